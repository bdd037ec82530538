from django.apps import AppConfig


class GpuadminConfig(AppConfig):
    name = "gpuadmin"
    verbose_name = "gpuadmin"
