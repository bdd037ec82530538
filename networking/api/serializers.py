"""Linode's IP address object (GET /networking/ips/{address})."""

import ipaddress

from rest_framework import serializers

from hypervisor.spec import mac_for_instance


class IpAddressSerializer(serializers.Serializer):
    """An Ipv4Address row held by an instance, with its pool."""

    address = serializers.CharField()
    gateway = serializers.CharField(source="pool.gateway", allow_null=True)
    subnet_mask = serializers.CharField(source="pool.netmask")
    prefix = serializers.IntegerField(source="pool.prefix_length")
    type = serializers.SerializerMethodField()
    public = serializers.SerializerMethodField()
    rdns = serializers.SerializerMethodField()
    linode_id = serializers.IntegerField(source="holder_id", allow_null=True)
    interface_id = serializers.SerializerMethodField()
    region = serializers.CharField(source="pool.region_id")
    vpc_nat_1_1 = serializers.SerializerMethodField()
    reserved = serializers.SerializerMethodField()

    def get_type(self, address) -> str:
        return "ipv4"

    def get_public(self, address) -> bool:
        return True

    def get_rdns(self, address) -> str | None:
        return None  # gpuadmin keeps no reverse DNS: the PTR record is the network's

    def get_interface_id(self, address) -> int | None:
        return None  # legacy configuration-profile networking: no Linode interface objects

    def get_vpc_nat_1_1(self, address) -> dict | None:
        return None

    def get_reserved(self, address) -> bool:
        return False  # Linode's reserved IPs (kept without a Linode) are not offered


class Ipv6AddressSerializer(serializers.Serializer):
    address = serializers.CharField(allow_null=True)
    gateway = serializers.CharField(allow_null=True)
    subnet_mask = serializers.CharField()
    prefix = serializers.IntegerField()
    type = serializers.CharField()
    public = serializers.BooleanField()
    rdns = serializers.CharField(allow_null=True)
    linode_id = serializers.IntegerField()
    interface_id = serializers.IntegerField(allow_null=True)
    region = serializers.CharField()
    vpc_nat_1_1 = serializers.DictField(allow_null=True)
    reserved = serializers.BooleanField()


class InstanceIpv4Serializer(serializers.Serializer):
    public = IpAddressSerializer(many=True)
    private = IpAddressSerializer(many=True)
    shared = IpAddressSerializer(many=True)
    reserved = IpAddressSerializer(many=True)
    vpc = serializers.ListField(child=serializers.DictField())


class InstanceIpv6Serializer(serializers.Serializer):
    slaac = Ipv6AddressSerializer()
    link_local = Ipv6AddressSerializer()
    # Linode calls this list `global`, a Python keyword.
    global_ = serializers.ListField(child=serializers.DictField())

    def get_fields(self):
        fields = super().get_fields()
        fields["global"] = fields.pop("global_")
        return fields


class InstanceIpsSerializer(serializers.Serializer):
    """The schema of GET /linode/instances/{id}/ips (instance_ips builds the body)."""

    ipv4 = InstanceIpv4Serializer()
    ipv6 = InstanceIpv6Serializer()


def link_local(*, instance) -> dict:
    """The guest NIC's IPv6 link-local address, EUI-64 from the MAC the domain gives it (what a guest
    kernel configures unless told to use stable-privacy addresses). Not routed: no gateway."""
    mac = bytes.fromhex(mac_for_instance(instance.pk).replace(":", ""))
    interface = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    address = ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + interface)
    return {
        "address": str(address),
        "gateway": None,
        "subnet_mask": "ffff:ffff:ffff:ffff::",
        "prefix": 64,
        "type": "ipv6",
        "public": False,
        "rdns": None,
        "linode_id": instance.pk,
        "interface_id": None,
        "region": instance.region_id,
        "vpc_nat_1_1": None,
        "reserved": False,
    }


def instance_ips(*, instance, addresses) -> dict:
    """GET /linode/instances/{id}/ips: the public IPv4 address the instance holds; no private, shared,
    reserved or VPC addresses. IPv6: only the link-local address (no region IPv6 range yet), and
    `slaac` is an empty address object so that clients that index it keep working."""
    return {
        "ipv4": {
            "public": IpAddressSerializer(addresses, many=True).data,
            "private": [],
            "shared": [],
            "reserved": [],
            "vpc": [],
        },
        "ipv6": {
            "slaac": {**link_local(instance=instance), "address": None, "prefix": 128, "public": True},
            "link_local": link_local(instance=instance),
            "global": [],
        },
    }
