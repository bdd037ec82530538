"""gpuadmin's URLs plus /bench/floor: the least a DRF view costs on the same server (no auth, no DB)."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class Floor(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request):
        return Response({"data": [], "page": 1, "pages": 1, "results": 0})


urlpatterns = [
    path("bench/floor", Floor.as_view()),
    path("", include("gpuadmin.urls")),
]
