"""Linode's catalogue objects. Units are Linode's: disk and memory in MB (MiB), transfer in GB,
network_out in Mbps, prices as numbers. Every type carries the same keys, GPU or not."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gpuadmin.api.fields import Timestamp


def _money(source: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=4, coerce_to_string=False, source=source)


class PlanPriceSerializer(serializers.Serializer):
    hourly = _money("price_hourly")
    monthly = _money("price_monthly")


class BackupsPriceSerializer(serializers.Serializer):
    hourly = _money("backups_price_hourly")
    monthly = _money("backups_price_monthly")


class BackupsAddonSerializer(serializers.Serializer):
    price = BackupsPriceSerializer(source="*")
    region_prices = serializers.SerializerMethodField()

    def get_region_prices(self, plan) -> list[dict]:
        return []


class AddonsSerializer(serializers.Serializer):
    backups = BackupsAddonSerializer(source="*")


class TypeSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField()
    locals()["class"] = serializers.CharField(source="type_class")  # a Python keyword, so set by name
    disk = serializers.IntegerField(source="disk_mib", help_text="MB")
    memory = serializers.IntegerField(source="memory_mib", help_text="MB")
    vcpus = serializers.IntegerField()
    gpus = serializers.IntegerField()
    network_out = serializers.IntegerField(source="network_out_mbps", help_text="Mbps")
    transfer = serializers.IntegerField(source="transfer_gb", help_text="GB a month")
    price = PlanPriceSerializer(source="*")
    region_prices = serializers.SerializerMethodField()
    addons = AddonsSerializer(source="*")
    successor = serializers.CharField(source="successor_id", allow_null=True)
    accelerated_devices = serializers.SerializerMethodField()

    def get_region_prices(self, plan) -> list[dict]:
        return []  # one price everywhere

    def get_accelerated_devices(self, plan) -> int:
        return 0  # Linode's NETINT transcoders; GPUs are counted in `gpus`


class ResolversSerializer(serializers.Serializer):
    ipv4 = serializers.CharField()
    ipv6 = serializers.CharField()


class RegionSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField()
    country = serializers.CharField()
    capabilities = serializers.SerializerMethodField()
    status = serializers.CharField()
    resolvers = serializers.SerializerMethodField()
    site_type = serializers.SerializerMethodField()

    def get_capabilities(self, region) -> list[str]:
        return ["Linodes", "GPU Linodes"] if region.offers_gpu else ["Linodes"]

    @extend_schema_field(ResolversSerializer)
    def get_resolvers(self, region) -> dict:
        return {"ipv4": "", "ipv6": ""}  # guests get their resolvers from DHCP/cloud-init

    def get_site_type(self, region) -> str:
        return "core"


class AvailabilitySerializer(serializers.Serializer):
    region = serializers.CharField()
    plan = serializers.CharField()
    available = serializers.BooleanField()


class ImageSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    created = Timestamp()
    created_by = serializers.SerializerMethodField()
    deprecated = serializers.BooleanField()
    is_public = serializers.BooleanField(source="public")
    size = serializers.IntegerField(source="size_mib", help_text="MB")
    total_size = serializers.IntegerField(source="size_mib", help_text="MB")
    type = serializers.SerializerMethodField()
    vendor = serializers.CharField(allow_null=True)
    status = serializers.SerializerMethodField()
    expiry = serializers.SerializerMethodField()
    eol = serializers.SerializerMethodField()
    updated = Timestamp(source="created")
    capabilities = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    os_type = serializers.CharField()

    def get_created_by(self, image) -> str:
        return "linode"

    def get_type(self, image) -> str:
        return "manual"

    def get_status(self, image) -> str:
        return "available"

    def get_expiry(self, image) -> str | None:
        return None

    def get_eol(self, image) -> str | None:
        return None

    def get_capabilities(self, image) -> list[str]:
        return []

    def get_tags(self, image) -> list[str]:
        return []
