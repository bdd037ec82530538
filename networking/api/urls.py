from django.urls import path

from networking.api import views

urlpatterns = [
    path("networking/ips", views.IpList.as_view(), name="ips"),
    path("networking/ips/<str:address>", views.IpDetail.as_view(), name="ip"),
]
