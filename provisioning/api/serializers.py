"""The Linode object and the event object as Linode's clients read them, and the request bodies."""

import uuid
from collections.abc import Mapping
from functools import lru_cache

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gpuadmin.api.fields import Flag, Text, Timestamp
from provisioning.services import TAG_MAX, TAG_MIN

HOST_NAMESPACE = uuid.UUID("5d3f0b9e-7c1a-4f0e-9a57-3c2f4a1b8e60")

# What services.validate_label and _validate_tags accept, for the OpenAPI document (they word the refusal).
LABEL_SCHEMA = {
    "minLength": 3,
    "maxLength": 64,
    "pattern": "^(?!.*(?:--|__|\\.\\.))[A-Za-z0-9][A-Za-z0-9_.-]{1,62}[A-Za-z0-9]$",
}
TAG_SCHEMA = {"minLength": TAG_MIN, "maxLength": TAG_MAX}


class SpecsSerializer(serializers.Serializer):
    disk = serializers.IntegerField(source="instance_type.disk_mib", help_text="MB")
    memory = serializers.IntegerField(source="instance_type.memory_mib", help_text="MB")
    vcpus = serializers.IntegerField(source="instance_type.vcpus")
    gpus = serializers.IntegerField(source="instance_type.gpus")
    transfer = serializers.IntegerField(source="instance_type.transfer_gb", help_text="GB a month")


class AlertsSerializer(serializers.Serializer):
    cpu = serializers.IntegerField()
    io = serializers.IntegerField()
    network_in = serializers.IntegerField()
    network_out = serializers.IntegerField()
    transfer_quota = serializers.IntegerField()


class BackupScheduleSerializer(serializers.Serializer):
    day = serializers.CharField(allow_null=True)
    window = serializers.CharField(allow_null=True)


class BackupsSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    available = serializers.BooleanField()
    schedule = BackupScheduleSerializer()
    last_successful = Timestamp(allow_null=True)


class InstanceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    group = serializers.CharField()
    status = serializers.CharField()
    created = Timestamp()
    updated = Timestamp()
    type = serializers.CharField(source="instance_type_id")
    region = serializers.CharField(source="region_id")
    image = serializers.CharField(source="image_id", allow_null=True)
    ipv4 = serializers.ListField(child=serializers.CharField())
    ipv6 = serializers.SerializerMethodField()
    specs = SpecsSerializer(source="*")
    alerts = serializers.SerializerMethodField()
    backups = serializers.SerializerMethodField()
    hypervisor = serializers.SerializerMethodField()
    watchdog_enabled = serializers.SerializerMethodField()
    tags = serializers.ListField(child=serializers.CharField())
    host_uuid = serializers.SerializerMethodField()
    has_user_data = serializers.SerializerMethodField()

    def get_ipv6(self, instance) -> str | None:
        return instance.ipv6 or None

    @extend_schema_field(AlertsSerializer)
    def get_alerts(self, instance) -> dict:
        return _alerts(vcpus=instance.instance_type.vcpus)

    @extend_schema_field(BackupsSerializer)
    def get_backups(self, instance) -> dict:
        return _backups()

    def get_hypervisor(self, instance) -> str:
        return "kvm"

    def get_watchdog_enabled(self, instance) -> bool:
        return True

    def get_host_uuid(self, instance) -> str | None:
        return _host_uuid(instance.host_id)

    def get_has_user_data(self, instance) -> bool:
        return bool(instance.user_data)  # Linode's metadata.user_data, carried by the NoCloud seed

    def to_representation(self, instance) -> dict:
        """The object the fields above declare (the schema reads them), built in one go: DRF's walk
        field by field, nested serializer and method fields was most of a 500-Linode page's CPU.
        tests/api/test_instances.py holds it equal to the field-by-field walk."""
        plan = instance.instance_type
        return linode_object(
            {
                "id": instance.id,
                "label": instance.label,
                "group": instance.group,
                "status": instance.status,
                "created": instance.created,
                "updated": instance.updated,
                "instance_type_id": instance.instance_type_id,
                "region_id": instance.region_id,
                "image_id": instance.image_id,
                "ipv4": instance.ipv4,
                "ipv6": instance.ipv6,
                "tags": instance.tags,
                "host_id": instance.host_id,
                "user_data_length": len(instance.user_data),
                "instance_type__disk_mib": plan.disk_mib,
                "instance_type__memory_mib": plan.memory_mib,
                "instance_type__vcpus": plan.vcpus,
                "instance_type__gpus": plan.gpus,
                "instance_type__transfer_gb": plan.transfer_gb,
            }
        )


def linode_object(row: Mapping) -> dict:
    """The Linode object of one instance row (selectors.LINODE_COLUMNS and user_data_length): a list
    builds it from rows rather than from an Instance and its plan per row (half of a 500-Linode page's
    CPU was Django making those models)."""
    vcpus = int(row["instance_type__vcpus"])
    return {
        "id": int(row["id"]),
        "label": str(row["label"]),
        "group": str(row["group"]),
        "status": str(row["status"]),
        "created": _TIMESTAMP.to_representation(row["created"]),
        "updated": _TIMESTAMP.to_representation(row["updated"]),
        "type": str(row["instance_type_id"]),
        "region": str(row["region_id"]),
        "image": None if row["image_id"] is None else str(row["image_id"]),
        "ipv4": [str(address) for address in row["ipv4"]],
        "ipv6": row["ipv6"] or None,
        "specs": {
            "disk": int(row["instance_type__disk_mib"]),
            "memory": int(row["instance_type__memory_mib"]),
            "vcpus": vcpus,
            "gpus": int(row["instance_type__gpus"]),
            "transfer": int(row["instance_type__transfer_gb"]),
        },
        "alerts": _alerts(vcpus=vcpus),
        "backups": _backups(),
        "hypervisor": "kvm",
        "watchdog_enabled": True,
        "tags": [str(tag) for tag in row["tags"]],
        "host_uuid": _host_uuid(row["host_id"]),
        "has_user_data": bool(row["user_data_length"]),
    }


def _alerts(*, vcpus: int) -> dict:
    # Linode's defaults; gpuadmin does not send alerts yet.
    return {"cpu": 90 * vcpus, "io": 10000, "network_in": 10, "network_out": 10, "transfer_quota": 80}


def _backups() -> dict:
    return {
        "enabled": False,
        "available": False,
        "schedule": {"day": None, "window": None},
        "last_successful": None,
    }


@lru_cache(maxsize=4096)
def _host_uuid(host_id: int | None) -> str | None:
    # Stable per host without naming it: customers may compare, not locate.
    return str(uuid.uuid5(HOST_NAMESPACE, str(host_id))) if host_id else None


class MetadataSerializer(serializers.Serializer):
    """Linode's metadata object: the customer's cloud-init user data, base64 (the service checks it)."""

    user_data = Text(required=False, allow_null=True, allow_blank=True, max_length=65536)


_TIMESTAMP = Timestamp()


class InstanceCreateSerializer(serializers.Serializer):
    """Shapes only; what the values mean (plan, region, label, credentials) is the service's to judge.
    Keys Linode defines that gpuadmin does not use (firewall_id, interfaces, ...) are ignored."""

    type = Text(max_length=64)
    region = Text(max_length=64)
    image = Text(max_length=64, required=False, allow_null=True)
    label = Text(max_length=64, required=False, allow_null=True, trim_whitespace=False, schema=LABEL_SCHEMA)
    root_pass = Text(max_length=128, required=False, allow_null=True, trim_whitespace=False)
    authorized_keys = serializers.ListField(
        child=Text(max_length=4096, trim_whitespace=False), required=False, default=list
    )
    booted = Flag(required=False, default=True)
    tags = serializers.ListField(child=Text(max_length=64, schema=TAG_SCHEMA), required=False, default=list)
    group = Text(max_length=64, required=False, allow_blank=True, default="")
    metadata = MetadataSerializer(required=False, allow_null=True)


class InstanceUpdateSerializer(serializers.Serializer):
    label = Text(max_length=64, required=False, trim_whitespace=False, schema=LABEL_SCHEMA)
    tags = serializers.ListField(child=Text(max_length=64, schema=TAG_SCHEMA), required=False)
    group = Text(max_length=64, required=False, allow_blank=True)


class RebuildSerializer(serializers.Serializer):
    """Linode's rebuild body; keys gpuadmin does not use (stackscript_id, disk_encryption) are ignored."""

    image = Text(max_length=64)
    root_pass = Text(max_length=128, required=False, allow_null=True, trim_whitespace=False)
    authorized_keys = serializers.ListField(
        child=Text(max_length=4096, trim_whitespace=False), required=False, default=list
    )
    booted = Flag(required=False, default=True)
    metadata = MetadataSerializer(required=False, allow_null=True)


class PasswordSerializer(serializers.Serializer):
    root_pass = Text(max_length=128, trim_whitespace=False)


class DiskPasswordSerializer(serializers.Serializer):
    password = Text(max_length=128, trim_whitespace=False)


class ResizeSerializer(serializers.Serializer):
    type = Text(max_length=64)


class EmptySerializer(serializers.Serializer):
    """Linode answers `{}` to power actions and deletes."""


class EntitySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    type = serializers.CharField()
    url = serializers.CharField()


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    created = Timestamp()
    duration = serializers.SerializerMethodField()
    entity = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()
    percent_complete = serializers.IntegerField()
    rate = serializers.SerializerMethodField()
    read = serializers.SerializerMethodField()
    seen = serializers.SerializerMethodField()
    secondary_entity = serializers.SerializerMethodField()
    status = serializers.CharField(source="event_status")
    time_remaining = serializers.SerializerMethodField()
    username = serializers.SerializerMethodField()

    def get_duration(self, job) -> float | None:
        if job.started is None or job.finished is None:
            return None
        return round((job.finished - job.started).total_seconds(), 3)

    @extend_schema_field(EntitySerializer)
    def get_entity(self, job) -> dict:
        return {
            "id": job.instance_id,
            "label": job.instance.label,
            "type": "linode",
            "url": f"/v4/linode/instances/{job.instance_id}",
        }

    def get_message(self, job) -> str | None:
        return job.error or None

    def get_rate(self, job) -> str | None:
        return None

    def get_read(self, job) -> bool:
        return False

    def get_seen(self, job) -> bool:
        return False

    @extend_schema_field(EntitySerializer(allow_null=True))
    def get_secondary_entity(self, job) -> dict | None:
        return None

    def get_time_remaining(self, job) -> int | None:
        return None

    def get_username(self, job) -> str | None:
        return job.event_username  # selectors.events_of: only users of the job's own account
