"""The public API under /v4 and /v4beta (the same views: clients that pin the beta keep working)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from gpuadmin.api.views import NotFoundView

endpoints = [
    path("", include("inventory.api.urls")),
    path("", include("provisioning.api.urls")),
    path("", include("networking.api.urls")),
    path("", include("accounts.api.urls")),
    path("", include("billing.api.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    re_path(r"^.*$", NotFoundView.as_view()),
]

urlpatterns = [
    path("v4/", include((endpoints, "v4"))),
    path("v4beta/", include((endpoints, "v4beta"))),
]
