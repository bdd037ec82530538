"""`python -m hypervisor.service --socket var/hypervisor.sock --state-dir var/hypervisor`: run the service.

scripts/run-demo starts it before the worker and the web server and exports GPUADMIN_HYPERVISOR_SOCKET,
so every process of the demo sends its calls on simulated hosts here. TERM or Ctrl-C stops it.
"""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from hypervisor.service.server import HypervisorService, ServiceAlreadyRunning


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m hypervisor.service", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path, help="unix socket to listen on")
    parser.add_argument(
        "--state-dir", type=Path, help="keep each simulated host's guests here across restarts"
    )
    parser.add_argument("--ready-file", type=Path, help="write the service's pid here once it listens")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    service = HypervisorService(options.socket, state_dir=options.state_dir)
    try:
        service.start()
    except ServiceAlreadyRunning as exc:
        logging.getLogger("hypervisor.service").error("%s", exc)
        return 1
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    if options.ready_file:
        options.ready_file.write_text(f"{os.getpid()}\n")
    try:
        service.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        service.stop()
        if options.ready_file:
            options.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
