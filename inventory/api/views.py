from django.http import Http404
from drf_spectacular.utils import extend_schema

from gpuadmin.api import filtering as f
from gpuadmin.api.pagination import LinodePagination
from gpuadmin.api.views import LinodeDetailView, LinodeListView, LinodeView
from inventory.api import selectors
from inventory.api.serializers import (
    AvailabilitySerializer,
    ImageSerializer,
    RegionSerializer,
    TypeSerializer,
)

TYPE_FILTERS = {
    "id": f.text("id"),
    "label": f.text("label"),
    "class": f.text("type_class"),
    "disk": f.integer("disk_mib"),
    "memory": f.integer("memory_mib"),
    "vcpus": f.integer("vcpus"),
    "gpus": f.integer("gpus"),
    "transfer": f.integer("transfer_gb"),
    "network_out": f.integer("network_out_mbps"),
    "successor": f.text("successor_id"),
}
REGION_FILTERS = {
    "id": f.text("id"),
    "label": f.text("label"),
    "country": f.text("country"),
    "status": f.text("status"),
}
IMAGE_FILTERS = {
    "id": f.text("id"),
    "label": f.text("label"),
    "vendor": f.text("vendor"),
    "deprecated": f.boolean("deprecated"),
    "is_public": f.boolean("public"),
    "size": f.integer("size_mib"),
    "created": f.timestamp("created"),
}


class TypeList(LinodeListView):
    """Plans for sale. GPU plans appear only where the gpu_instances flag is on for the caller."""

    serializer_class = TypeSerializer
    filter_fields = TYPE_FILTERS

    def get_queryset(self):
        return selectors.plans_visible(include_gpu=self.gpu_plans_visible)


class TypeDetail(LinodeDetailView):
    serializer_class = TypeSerializer

    def get_object(self):
        plan = selectors.plan_visible(plan_id=self.kwargs["type_id"], include_gpu=self.gpu_plans_visible)
        if plan is None:
            raise Http404
        return plan


class RegionList(LinodeListView):
    serializer_class = RegionSerializer
    filter_fields = REGION_FILTERS

    def get_queryset(self):
        return selectors.regions_with_offers(include_gpu=self.gpu_plans_visible)


class RegionDetail(LinodeDetailView):
    serializer_class = RegionSerializer

    def get_object(self):
        region = selectors.regions_with_offers(include_gpu=self.gpu_plans_visible).filter(
            pk=self.kwargs["region_id"]
        )
        if not region:
            raise Http404
        return region[0]


class AvailabilityList(LinodeView):
    """Whether one more instance of each visible GPU plan can be placed now, per region."""

    pagination_class = LinodePagination

    @extend_schema(operation_id="regions_availability_list", responses=AvailabilitySerializer(many=True))
    def get(self, request, region_id=None):
        rows = selectors.availability(include_gpu=self.gpu_plans_visible, region_id=region_id)
        if rows is None:
            raise Http404
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AvailabilitySerializer(page, many=True).data)


class RegionAvailability(AvailabilityList):
    @extend_schema(operation_id="region_availability_list", responses=AvailabilitySerializer(many=True))
    def get(self, request, region_id):
        return super().get(request, region_id)


class ImageList(LinodeListView):
    serializer_class = ImageSerializer
    filter_fields = IMAGE_FILTERS

    def get_queryset(self):
        return selectors.public_images()


class ImageDetail(LinodeDetailView):
    serializer_class = ImageSerializer

    def get_object(self):
        image = selectors.public_images().filter(pk=f"{self.kwargs['vendor']}/{self.kwargs['name']}").first()
        if image is None:
            raise Http404
        return image
