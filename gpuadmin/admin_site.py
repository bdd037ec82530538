"""The admin site: Django's, with the capacity dashboard as its index and the spin-up page.

It replaces `admin.site` through gpuadmin.apps.GpuAdminSiteConfig, so every app keeps registering with
`@admin.register` as usual. Imports of the views are deferred: this module is loaded while the app
registry is still being populated.
"""

from django.contrib import admin
from django.urls import path


class GpuAdminSite(admin.AdminSite):
    site_header = "gpuadmin"
    site_title = "gpuadmin"
    index_title = "GPU fleet administration"
    index_template = "admin/gpuadmin/index.html"
    # The app list sits on the dashboard; beside every list it would take a quarter of a 1280 px screen.
    enable_nav_sidebar = False
    # "View site": the public status page (gpuadmin.views.status_page).
    site_url = "/"

    def get_urls(self):
        from gpuadmin import dashboard, search, spin_up, whatif

        return [
            path("capacity/", self.admin_view(dashboard.capacity_view), name="capacity"),
            path("spin-up/", self.admin_view(spin_up.spin_up_view), name="spin_up"),
            path("search/", self.admin_view(search.search_view), name="search"),
            path("what-if/", self.admin_view(whatif.whatif_view), name="whatif"),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        from gpuadmin import dashboard

        return super().index(
            request, extra_context={**dashboard.index_context(request), **(extra_context or {})}
        )
