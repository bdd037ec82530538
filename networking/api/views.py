"""GET /networking/ips and /networking/ips/{address}: the addresses the caller's Linodes hold."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from gpuadmin.api import filtering as f
from gpuadmin.api.views import LinodeListView, LinodeView
from networking.api import selectors
from networking.api.serializers import IpAddressSerializer

IP_FILTERS = {
    "address": f.text("address"),
    "region": f.text("pool__region_id"),
    "linode_id": f.integer("holder_id"),
    "type": f.constant("ipv4"),
    "public": f.constant(True, parse=f.boolean_value),
}


class IpList(LinodeListView):
    scope = "ips"
    serializer_class = IpAddressSerializer
    filter_fields = IP_FILTERS

    def get_queryset(self):
        return selectors.addresses_of(account=self.account)


class IpDetail(LinodeView):
    scope = "ips"

    @extend_schema(responses=IpAddressSerializer)
    def get(self, request, address):
        found = selectors.address_of(account=self.account, address=address)
        if found is None:
            raise Http404
        return Response(IpAddressSerializer(found).data)
