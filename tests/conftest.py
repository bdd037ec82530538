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


@pytest.fixture(autouse=True)
def _default_flags(request):
    """Transactional tests end with a flush that empties what data migrations wrote; put it back."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(
        request.fixturenames
    )
    if uses_db:
        request.getfixturevalue("_django_db_helper")
        from gpuadmin.demo import ensure_default_flags

        ensure_default_flags()
