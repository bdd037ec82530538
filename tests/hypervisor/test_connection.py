import socket
import time

import libvirt
import pytest

from hypervisor import faults
from hypervisor.connection import ConnectionPool, connect, default_pool, translated, uri_of
from hypervisor.errors import PermanentHypervisorError, TransientHypervisorError
from hypervisor.faults import Step
from hypervisor.profiles import RTX6000_2X2, profile_uri


@pytest.fixture
def uri(request):
    return profile_uri(RTX6000_2X2, request.node.name)


def test_one_connection_per_uri_reused_while_alive(uri):
    first = connect(uri)
    assert connect(uri) is first
    assert uri_of(first) == uri
    assert connect(profile_uri(RTX6000_2X2, "other")) is not first


def test_a_dropped_connection_is_reopened_on_the_next_call(uri):
    first = connect(uri)
    first.close()  # what a libvirtd restart or a cut ssh link looks like from here
    second = connect(uri)
    assert second is not first
    assert second.isAlive() == 1
    assert second.listAllDomains(0) == []


def test_an_error_that_means_the_link_broke_drops_the_connection(uri):
    first = connect(uri)
    with pytest.raises(TransientHypervisorError) as caught, translated(uri=uri, step=Step.START):
        raise _libvirt_error(libvirt.VIR_ERR_RPC, "End of file while reading data: Input/output error")
    assert caught.value.code == libvirt.VIR_ERR_RPC
    assert str(caught.value) == f"{uri}: start failed: End of file while reading data: Input/output error"
    assert connect(uri) is not first


def test_other_errors_are_permanent_and_keep_the_connection(uri):
    first = connect(uri)
    with pytest.raises(PermanentHypervisorError) as caught, translated(uri=uri, step=Step.DEFINE):
        raise _libvirt_error(libvirt.VIR_ERR_XML_ERROR, "XML error: bad cpuset")
    assert caught.value.code == libvirt.VIR_ERR_XML_ERROR and not caught.value.transient
    assert connect(uri) is first


def test_a_host_that_never_answers_times_out_instead_of_hanging():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        pool = ConnectionPool(open_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(TransientHypervisorError, match="no answer within 0.5 s while connecting"):
            pool.get(f"qemu+tcp://127.0.0.1:{port}/system")
        assert time.monotonic() - started < 3


def test_a_uri_libvirt_refuses_is_permanent():
    # An unknown transport is refused by the client library itself, with or without a libvirtd on
    # the machine (an unknown driver alone is tried on the daemon's socket, whose absence is transient).
    with pytest.raises(PermanentHypervisorError, match="transport in URL not recognised"):
        connect("bogus+nosuchtransport:///system")


def test_an_armed_connect_fault_fails_the_open(uri):
    with faults.injected(Step.CONNECT, uri=uri, permanent=True) as fault:
        with pytest.raises(PermanentHypervisorError, match="connect failed: injected permanent fault"):
            connect(uri)
        assert fault.fired == 1
        assert connect(uri).isAlive() == 1  # the fault was for one call only


def test_close_all_forgets_every_connection(uri):
    first = connect(uri)
    default_pool.close_all()
    assert connect(uri) is not first


def _libvirt_error(code: int, message: str) -> libvirt.libvirtError:
    error = libvirt.libvirtError(message)
    error.err = (code, libvirt.VIR_FROM_RPC, message, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return error
