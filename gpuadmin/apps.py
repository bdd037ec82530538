from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GpuadminConfig(AppConfig):
    name = "gpuadmin"
    verbose_name = "gpuadmin"


class GpuAdminSiteConfig(admin_apps.AdminConfig):
    """django.contrib.admin with gpuadmin's site (the dashboard index, the spin-up page) as admin.site."""

    default = False  # named in INSTALLED_APPS; gpuadmin's own config stays GpuadminConfig
    default_site = "gpuadmin.admin_site.GpuAdminSite"
