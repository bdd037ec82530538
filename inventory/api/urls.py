from django.urls import path

from inventory.api import views

urlpatterns = [
    path("regions", views.RegionList.as_view(), name="regions"),
    path("regions/availability", views.AvailabilityList.as_view(), name="regions-availability"),
    path("regions/<str:region_id>", views.RegionDetail.as_view(), name="region"),
    path(
        "regions/<str:region_id>/availability", views.RegionAvailability.as_view(), name="region-availability"
    ),
    path("linode/types", views.TypeList.as_view(), name="types"),
    path("linode/types/<str:type_id>", views.TypeDetail.as_view(), name="type"),
    path("images", views.ImageList.as_view(), name="images"),
    path("images/<str:vendor>/<str:name>", views.ImageDetail.as_view(), name="image"),
]
