"""Fault injection: make a hypervisor step fail on purpose, so tests can prove retries and rollbacks.

Every public call of the hypervisor layer calls `check(step, uri)` before it talks to libvirt, so an
armed fault fires exactly where a real libvirt error would, and surfaces as the same exception type.

API (all of it is process-local and thread-safe; a django-q worker in another process does not see
faults armed in the test process, which is why tests run tasks with `sync=True`):

    from hypervisor import faults
    from hypervisor.faults import Step

    faults.inject(Step.START, uri=host.libvirt_uri, times=2)          # next 2 starts on that host fail,
                                                                       # transiently, then starts work
    faults.inject(Step.DEFINE, permanent=True)                        # the next define on any host fails
    faults.inject(Step.VOLUME, times=None, code=libvirt.VIR_ERR_NO_STORAGE_POOL)  # fails until cleared
    with faults.injected(Step.SHUTDOWN, uri=uri):                      # armed for the block only
        ...
    faults.clear()                                                     # disarm everything
    fault = faults.inject(...); fault.fired                            # how many times it fired

`inject` arguments:
    step       which call fails, a `Step` (or its string value): connect, discover, list, volume,
               define, start, shutdown, undefine, reset, grow, copy, seed
    uri        only calls on this libvirt URI (exactly `Host.libvirt_uri`); None: any host
    permanent  raise PermanentHypervisorError instead of TransientHypervisorError
    times      how many calls fail before the fault disarms itself; None: until `clear()`
    after      how many matching calls pass before it fires (after=3 on copy: the copy breaks midway)
    code       the libvirt error code the exception carries (default: a plausible one for the kind)
    message    the exception's message (default names the step and says it was injected)
    delay      seconds the call waits instead of failing: a slow host (the step then runs normally)

A worker process started by a test can be armed through its environment: GPUADMIN_FAULTS holds a JSON
list of `inject` keyword arguments, e.g. '[{"step": "define", "delay": 600}]' (read at import; a test
setting, never set in production).

Faults armed for the same step and URI fire in the order they were armed. The test suite clears
every fault after each test (tests/conftest.py).
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import libvirt

from hypervisor.errors import HypervisorError, PermanentHypervisorError, TransientHypervisorError


class Step(StrEnum):
    CONNECT = "connect"  # opening a connection (connection.connect)
    DISCOVER = "discover"  # reading capabilities and node devices (discovery.describe_host)
    LIST = "list"  # list_managed_domains
    VOLUME = "volume"  # ensure_volume
    DEFINE = "define"  # ensure_defined
    START = "start"  # ensure_running
    SHUTDOWN = "shutdown"  # ensure_shut_off
    UNDEFINE = "undefine"  # ensure_absent
    RESET = "reset"  # reset_pci_device
    GROW = "grow"  # volumes.grow_volume
    COPY = "copy"  # volumes.copy_volume: once per host at the start, then once per chunk streamed
    SEED = "seed"  # seed.ensure_seed: the NoCloud seed volume built and uploaded


@dataclass(eq=False)
class Fault:
    step: Step
    uri: str | None
    permanent: bool
    times: int | None
    code: int
    message: str
    after: int = 0
    delay: float = 0.0
    fired: int = 0
    passed: int = 0

    def matches(self, step: Step, uri: str) -> bool:
        return (
            self.step == step and self.uri in (None, uri) and (self.times is None or self.fired < self.times)
        )

    def error(self, uri: str) -> HypervisorError:
        cls = PermanentHypervisorError if self.permanent else TransientHypervisorError
        return cls(self.message, uri=uri, code=self.code, step=str(self.step))


_lock = threading.Lock()
_armed: list[Fault] = []


def inject(
    step: Step | str,
    *,
    uri: str | None = None,
    permanent: bool = False,
    times: int | None = 1,
    code: int | None = None,
    message: str | None = None,
    after: int = 0,
    delay: float | None = None,
) -> Fault:
    step = Step(step)
    if code is None:
        code = libvirt.VIR_ERR_OPERATION_FAILED if permanent else libvirt.VIR_ERR_OPERATION_TIMEOUT
    kind = "permanent" if permanent else "transient"
    fault = Fault(
        step=step,
        uri=uri,
        permanent=permanent,
        times=times,
        code=code,
        message=message or f"{step} failed: injected {kind} fault",
        after=after,
        delay=delay or 0.0,
    )
    with _lock:
        _armed.append(fault)
    return fault


def clear() -> None:
    with _lock:
        _armed.clear()


@contextmanager
def injected(step: Step | str, **kwargs) -> Iterator[Fault]:
    fault = inject(step, **kwargs)
    try:
        yield fault
    finally:
        with _lock:
            if fault in _armed:
                _armed.remove(fault)


def check(step: Step, uri: str) -> None:
    """Raise the first armed fault for this step on this URI, if any."""
    with _lock:
        fault = next((f for f in _armed if f.matches(step, uri)), None)
        if fault is None:
            return
        if fault.passed < fault.after:
            fault.passed += 1
            return
        fault.fired += 1
    if fault.delay:
        time.sleep(fault.delay)
        return
    raise fault.error(uri)


def arm_from_environment(value: str | None = None) -> list[Fault]:
    """Arm the faults GPUADMIN_FAULTS lists (a JSON list of `inject` keyword arguments)."""
    value = os.environ.get("GPUADMIN_FAULTS", "") if value is None else value
    return [inject(**spec) for spec in json.loads(value)] if value.strip() else []


arm_from_environment()
