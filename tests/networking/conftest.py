from tests.provisioning.conftest import (  # noqa: F401 - the same world as the provisioning tests
    employee,
    gpu_host,
    image,
    plans,
    region,
    run_tasks,
)
