"""GET /linode/instances/{id}/disks[/{diskId}] and /configs[/{configId}]: what the domain has, in
Linode's shapes (provisioning.disks). Read-only: the writes Linode allows answer a 400 saying what to
do instead, never a 404 or a 405 a client would take for a missing endpoint."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from gpuadmin.api.fields import Timestamp
from gpuadmin.api.filtering import HEADER, parse_filter
from gpuadmin.api.views import LinodeListView, LinodeView
from provisioning import disks, services
from provisioning.api.serializers import DiskPasswordSerializer, EmptySerializer
from provisioning.api.views import InstanceScoped, parsed
from provisioning.exceptions import InvalidRequest, NotSupported

DISKS_ARE_MANAGED = (
    "A GPU Linode has one disk, made from its image, that gpuadmin manages: disks cannot be {what}. "
    "Resize the Linode to grow its disk, or rebuild it to start again from an image."
)
PROFILE_IS_MANAGED = (
    "A GPU Linode has one configuration profile, built from its plan and image, that gpuadmin manages: "
    "profiles cannot be {what}."
)


class DiskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    size = serializers.IntegerField(help_text="MB")
    status = serializers.ChoiceField(choices=["ready", "not ready", "deleting"])
    filesystem = serializers.ChoiceField(choices=["raw", "swap", "ext3", "ext4", "initrd"])
    disk_encryption = serializers.ChoiceField(choices=["enabled", "disabled"])
    created = Timestamp()
    updated = Timestamp()


class DeviceSerializer(serializers.Serializer):
    disk_id = serializers.IntegerField(allow_null=True)
    volume_id = serializers.IntegerField(allow_null=True)


class DevicesSerializer(serializers.Serializer):
    sda = DeviceSerializer(allow_null=True)
    sdb = DeviceSerializer(allow_null=True)
    sdc = DeviceSerializer(allow_null=True)
    sdd = DeviceSerializer(allow_null=True)
    sde = DeviceSerializer(allow_null=True)
    sdf = DeviceSerializer(allow_null=True)
    sdg = DeviceSerializer(allow_null=True)
    sdh = DeviceSerializer(allow_null=True)


class HelpersSerializer(serializers.Serializer):
    updatedb_disabled = serializers.BooleanField()
    distro = serializers.BooleanField()
    modules_dep = serializers.BooleanField()
    network = serializers.BooleanField()
    devtmpfs_automount = serializers.BooleanField()


class ConfigSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    comments = serializers.CharField(allow_blank=True)
    kernel = serializers.CharField()
    initrd = serializers.IntegerField(allow_null=True)
    root_device = serializers.CharField()
    run_level = serializers.ChoiceField(choices=["default", "single", "binbash"])
    virt_mode = serializers.ChoiceField(choices=["paravirt", "fullvirt"])
    memory_limit = serializers.IntegerField()
    helpers = HelpersSerializer()
    devices = DevicesSerializer()
    interfaces = serializers.ListField(child=serializers.DictField())
    created = Timestamp()
    updated = Timestamp()


class ComputedList(InstanceScoped, LinodeListView):
    """A paginated list built in Python, not a queryset: nothing in it is filterable, so any X-Filter
    key is a 400 rather than ignored."""

    filter_backends = []
    rows = None

    def get_queryset(self):
        parse_filter(self.request.headers.get(HEADER), {})
        return type(self).rows(instance=self.get_instance())


def _refuse(template: str, what: str):
    raise NotSupported(template.format(what=what))


class DiskList(ComputedList):
    serializer_class = DiskSerializer
    rows = disks.instance_disks

    @extend_schema(request=None, responses={})
    def post(self, request, instance_id):
        self.get_instance()
        _refuse(DISKS_ARE_MANAGED, "added")


class DiskScoped(InstanceScoped):
    def get_disk(self):
        disk = disks.instance_disk(instance=self.get_instance(), disk_id=self.kwargs["disk_id"])
        if disk is None:
            raise Http404
        return disk


class DiskDetail(DiskScoped, LinodeView):
    @extend_schema(responses=DiskSerializer)
    def get(self, request, instance_id, disk_id):
        return Response(DiskSerializer(self.get_disk()).data)

    @extend_schema(request=None, responses={})
    def put(self, request, instance_id, disk_id):
        self.get_disk()
        _refuse(DISKS_ARE_MANAGED, "renamed or changed")

    @extend_schema(responses={})
    def delete(self, request, instance_id, disk_id):
        self.get_disk()
        _refuse(DISKS_ARE_MANAGED, "deleted")


class DiskAction(DiskScoped, LinodeView):
    """POST disks/{id}/resize and /clone."""

    what = ""

    @extend_schema(request=None, responses={})
    def post(self, request, instance_id, disk_id):
        self.get_disk()
        _refuse(DISKS_ARE_MANAGED, type(self).what)


class DiskResize(DiskAction):
    what = "resized on their own"


class DiskClone(DiskAction):
    what = "cloned"


class DiskPassword(DiskScoped, LinodeView):
    """Linode resets the root password on a disk; the Linode's one boot disk makes it the Linode's reset
    (the seed carries the new hash). The seed itself holds no system to reset a password on."""

    @extend_schema(request=DiskPasswordSerializer, responses=EmptySerializer)
    def post(self, request, instance_id, disk_id):
        data = parsed(DiskPasswordSerializer, request)
        disk = self.get_disk()
        if disk.id != disks.boot_disk_id(self.get_instance().pk):
            raise InvalidRequest(
                "This disk is the NoCloud seed, not a system: reset the password on the boot disk.",
                field="disk_id",
            )
        services.instance_password_reset(
            instance=self.get_instance(), actor=request.user, root_pass=data["password"]
        )
        return Response({})


class ConfigList(ComputedList):
    serializer_class = ConfigSerializer
    rows = disks.instance_configs

    @extend_schema(request=None, responses={})
    def post(self, request, instance_id):
        self.get_instance()
        _refuse(PROFILE_IS_MANAGED, "added")


class ConfigDetail(InstanceScoped, LinodeView):
    def get_config(self):
        config = disks.instance_config(instance=self.get_instance(), config_id=self.kwargs["config_id"])
        if config is None:
            raise Http404
        return config

    @extend_schema(responses=ConfigSerializer)
    def get(self, request, instance_id, config_id):
        return Response(ConfigSerializer(self.get_config()).data)

    @extend_schema(request=None, responses={})
    def put(self, request, instance_id, config_id):
        self.get_config()
        _refuse(PROFILE_IS_MANAGED, "changed")

    @extend_schema(responses={})
    def delete(self, request, instance_id, config_id):
        self.get_config()
        _refuse(PROFILE_IS_MANAGED, "deleted")
