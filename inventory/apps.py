from django.apps import AppConfig
from django.conf import settings


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self) -> None:
        # hypervisor/ knows nothing of Django: hand it the settings that concern it.
        from hypervisor import connection, routing

        connection.configure(
            open_timeout=settings.GPUADMIN_LIBVIRT_OPEN_TIMEOUT,
            keepalive_interval=settings.GPUADMIN_LIBVIRT_KEEPALIVE_INTERVAL,
            keepalive_count=settings.GPUADMIN_LIBVIRT_KEEPALIVE_COUNT,
        )
        routing.use_service(settings.GPUADMIN_HYPERVISOR_SOCKET or None)
