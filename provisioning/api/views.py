from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from gpuadmin.api import filtering as f
from gpuadmin.api.throttling import LINODE_CREATE
from gpuadmin.api.views import LinodeDetailView, LinodeListView, LinodeView
from networking.api.selectors import instance_addresses
from networking.api.serializers import InstanceIpsSerializer, instance_ips
from provisioning import services
from provisioning.api import selectors
from provisioning.api.serializers import (
    EmptySerializer,
    EventSerializer,
    InstanceCreateSerializer,
    InstanceSerializer,
    InstanceUpdateSerializer,
    PasswordSerializer,
    RebuildSerializer,
    ResizeSerializer,
    linode_object,
)

INSTANCE_FILTERS = {
    "id": f.integer("id"),
    "label": f.text("label"),
    "group": f.text("group"),
    "status": f.text("status"),
    "region": f.text("region_id"),
    "type": f.text("instance_type_id"),
    "image": f.text("image_id"),
    "tags": f.tag_list("tags"),
    "created": f.timestamp("created"),
    "updated": f.timestamp("updated"),
    "hypervisor": f.constant("kvm"),
}
EVENT_FILTERS = {
    "id": f.integer("id"),
    "action": f.text("action"),
    "status": f.text("event_status"),
    "created": f.timestamp("created"),
    "percent_complete": f.integer("percent_complete"),
    "entity.id": f.integer("instance_id"),
    "entity.label": f.text("instance__label"),
    "entity.type": f.constant("linode"),
    "username": f.text("event_username"),
    "seen": f.constant(False, parse=f.boolean_value),
    "read": f.constant(False, parse=f.boolean_value),
}


def parsed(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class InstanceScoped:
    scope = "linodes"

    def get_instance(self):
        instance = selectors.instance_of(account=self.account, instance_id=self.kwargs["instance_id"])
        if instance is None:
            raise Http404
        return instance


class InstanceList(InstanceScoped, LinodeListView):
    serializer_class = InstanceSerializer
    filter_fields = INSTANCE_FILTERS
    rate_buckets = {"POST": (LINODE_CREATE,)}

    def get_queryset(self):
        return selectors.instances_of(account=self.account)

    def list(self, request, *args, **kwargs):
        # Rows, not models: the same objects as InstanceSerializer's (test_instances holds them equal).
        page = self.paginate_queryset(selectors.linode_rows(self.filter_queryset(self.get_queryset())))
        return self.get_paginated_response([linode_object(row) for row in page])

    @extend_schema(request=InstanceCreateSerializer, responses=InstanceSerializer)
    def post(self, request):
        data = parsed(InstanceCreateSerializer, request)
        if self.account is None:
            raise PermissionDenied("Your user belongs to no account, so it cannot own a Linode.")
        instance = services.instance_create(
            account=self.account,
            actor=request.user,
            plan=services.plan_for(user=request.user, plan_id=data["type"]),
            region=services.region_for(region_id=data["region"]),
            image=services.image_for(image_id=data["image"]) if data.get("image") else None,
            label=data.get("label"),
            root_pass=data.get("root_pass"),
            authorized_keys=data["authorized_keys"],
            booted=data["booted"],
            tags=data["tags"],
            group=data["group"],
            metadata_user_data=(data.get("metadata") or {}).get("user_data"),
        )
        return Response(InstanceSerializer(instance).data)


class InstanceIps(InstanceScoped, LinodeView):
    """GET /linode/instances/{id}/ips: what the instance holds, in Linode's grouping."""

    @extend_schema(responses=InstanceIpsSerializer)
    def get(self, request, instance_id):
        instance = self.get_instance()
        return Response(instance_ips(instance=instance, addresses=instance_addresses(instance=instance)))


class InstanceDetail(InstanceScoped, LinodeView):
    @extend_schema(responses=InstanceSerializer)
    def get(self, request, instance_id):
        row = selectors.instance_row_of(account=self.account, instance_id=instance_id)
        if row is None:
            raise Http404
        return Response(linode_object(row))

    @extend_schema(request=InstanceUpdateSerializer, responses=InstanceSerializer)
    def put(self, request, instance_id):
        data = parsed(InstanceUpdateSerializer, request)
        instance = services.instance_update(instance=self.get_instance(), actor=request.user, **data)
        return Response(InstanceSerializer(instance).data)

    @extend_schema(responses={200: EmptySerializer})
    def delete(self, request, instance_id):
        services.instance_delete(instance=self.get_instance(), actor=request.user)
        return Response({})


class PowerAction(InstanceScoped, LinodeView):
    """POST boot, reboot or shutdown: the job is queued and its event appears in /account/events."""

    service = None

    @extend_schema(request=None, responses=EmptySerializer)
    def post(self, request, instance_id):
        type(self).service(instance=self.get_instance(), actor=request.user)
        return Response({})


class InstanceBoot(PowerAction):
    service = services.instance_boot


class InstanceReboot(PowerAction):
    service = services.instance_reboot


class InstanceShutdown(PowerAction):
    service = services.instance_shutdown


class InstanceResize(InstanceScoped, LinodeView):
    @extend_schema(request=ResizeSerializer, responses=EmptySerializer)
    def post(self, request, instance_id):
        data = parsed(ResizeSerializer, request)
        instance = self.get_instance()
        plan = services.plan_for(user=request.user, plan_id=data["type"])
        services.instance_resize(instance=instance, actor=request.user, plan=plan)
        return Response({})


class InstanceRebuild(InstanceScoped, LinodeView):
    @extend_schema(request=RebuildSerializer, responses=InstanceSerializer)
    def post(self, request, instance_id):
        data = parsed(RebuildSerializer, request)
        instance = self.get_instance()
        rebuilt = services.instance_rebuild(
            instance=instance,
            actor=request.user,
            image=services.image_for(image_id=data["image"]),
            root_pass=data.get("root_pass"),
            authorized_keys=data["authorized_keys"],
            booted=data["booted"],
            # Absent: the user data stays; present (even empty): it is replaced.
            metadata_user_data=(data["metadata"] or {}).get("user_data") or ""
            if "metadata" in data
            else None,
        )
        return Response(InstanceSerializer(rebuilt).data)


class InstancePassword(InstanceScoped, LinodeView):
    @extend_schema(request=PasswordSerializer, responses=EmptySerializer)
    def post(self, request, instance_id):
        data = parsed(PasswordSerializer, request)
        services.instance_password_reset(
            instance=self.get_instance(), actor=request.user, root_pass=data["root_pass"]
        )
        return Response({})


class EventList(LinodeListView):
    scope = "events"
    serializer_class = EventSerializer
    filter_fields = EVENT_FILTERS

    def get_queryset(self):
        return selectors.events_of(account=self.account)


class EventDetail(LinodeDetailView):
    scope = "events"
    serializer_class = EventSerializer

    def get_object(self):
        event = selectors.event_of(account=self.account, event_id=self.kwargs["event_id"])
        if event is None:
            raise Http404
        return event
