import pytest
from django.db import connection

from hypervisor import faults
from hypervisor.connection import default_pool


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
            item.add_marker(
                pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)")
            )


@pytest.fixture(autouse=True)
def _hypervisor_reset():
    """Each test starts with no armed fault and fresh libvirt connections (test-driver state is per open)."""
    yield
    faults.clear()
    default_pool.close_all()
