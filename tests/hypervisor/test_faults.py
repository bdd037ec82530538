import libvirt
import pytest

from hypervisor import faults
from hypervisor.errors import PermanentHypervisorError, TransientHypervisorError
from hypervisor.faults import Step

URI, OTHER = "qemu+ssh://gpu-1.example/system", "qemu+ssh://gpu-2.example/system"


def fails(step: Step, uri: str = URI) -> type | None:
    try:
        faults.check(step, uri)
    except (TransientHypervisorError, PermanentHypervisorError) as exc:
        return type(exc)
    return None


def test_nothing_armed_nothing_fails():
    assert fails(Step.START) is None


def test_a_fault_fires_its_number_of_times_on_its_step_and_host_only():
    fault = faults.inject(Step.START, uri=URI, times=2)
    assert fails(Step.DEFINE) is None
    assert fails(Step.START, OTHER) is None
    assert [fails(Step.START) for _ in range(3)] == [TransientHypervisorError, TransientHypervisorError, None]
    assert fault.fired == 2


def test_a_fault_without_a_host_fires_everywhere_until_cleared():
    faults.inject("undefine", times=None, permanent=True)
    assert [fails(Step.UNDEFINE, uri) for uri in (URI, OTHER, URI)] == [PermanentHypervisorError] * 3
    faults.clear()
    assert fails(Step.UNDEFINE) is None


def test_faults_fire_in_the_order_they_were_armed():
    faults.inject(Step.VOLUME, permanent=True)
    faults.inject(Step.VOLUME)
    assert [fails(Step.VOLUME) for _ in range(3)] == [
        PermanentHypervisorError,
        TransientHypervisorError,
        None,
    ]


def test_the_exception_carries_step_host_code_and_message():
    faults.inject(
        Step.SHUTDOWN, uri=URI, code=libvirt.VIR_ERR_AGENT_UNRESPONSIVE, message="guest agent is gone"
    )
    with pytest.raises(TransientHypervisorError) as caught:
        faults.check(Step.SHUTDOWN, URI)
    error = caught.value
    assert (error.step, error.uri, error.code, error.message) == (
        "shutdown",
        URI,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        "guest agent is gone",
    )
    assert str(error) == f"{URI}: guest agent is gone"


def test_injected_disarms_when_the_block_ends_even_unspent():
    with faults.injected(Step.DEFINE, times=5):
        assert fails(Step.DEFINE) is TransientHypervisorError
    assert fails(Step.DEFINE) is None


def test_an_unknown_step_is_refused_when_armed():
    with pytest.raises(ValueError):
        faults.inject("reboot")


def test_a_delay_fault_slows_the_step_and_then_lets_it_run():
    import time as _time

    from hypervisor import faults as _faults

    fault = _faults.inject("define", uri="test:///delay", delay=0.3)
    began = _time.monotonic()
    _faults.check(_faults.Step.DEFINE, "test:///delay")  # no error: the step goes on
    assert _time.monotonic() - began >= 0.3 and fault.fired == 1
    _faults.check(_faults.Step.DEFINE, "test:///delay")  # disarmed after one call


def test_faults_are_armed_from_the_environment_of_a_worker_process():
    from hypervisor import faults as _faults

    [fault] = _faults.arm_from_environment('[{"step": "undefine", "delay": 600, "uri": "test:///x"}]')
    assert (fault.step, fault.delay, fault.uri) == (_faults.Step.UNDEFINE, 600, "test:///x")
    assert _faults.arm_from_environment("") == []
