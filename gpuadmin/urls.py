from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from gpuadmin import views

urlpatterns = [
    path("", views.status_page, name="status"),
    # The OpenAPI schema in Swagger UI, served from our static files (drf-spectacular-sidecar). Not Redoc:
    # drf-spectacular's Redoc page loads its fonts from Google.
    path("docs/api/", SpectacularSwaggerView.as_view(url_name="v4:openapi"), name="api-docs"),
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
