from django.contrib import admin
from django.urls import include, path

from gpuadmin import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("gpuadmin.api.urls")),
]

# JSON error bodies under /v4, Django's pages elsewhere.
handler400 = "gpuadmin.api.errors.handler400"
handler403 = "gpuadmin.api.errors.handler403"
handler404 = "gpuadmin.api.errors.handler404"
handler500 = "gpuadmin.api.errors.handler500"
