from django.conf import settings
from django.http import Http404
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts.api.serializers import AccountSerializer, ProfileSerializer
from gpuadmin.api.permissions import ANY_TOKEN
from gpuadmin.api.views import LinodeView


class AccountDetail(LinodeView):
    scope = "account"

    @extend_schema(responses=AccountSerializer)
    def get(self, request):
        if self.account is None:
            raise Http404
        # Billing sits above accounts, so the balances come through a setting, not an import.
        billing = import_string(settings.GPUADMIN_ACCOUNT_BILLING)(account=self.account)
        context = {"gpu_plans_visible": self.gpu_plans_visible, "billing": billing}
        return Response(AccountSerializer(self.account, context=context).data)


class ProfileDetail(LinodeView):
    """Any valid token may read its own user's profile, as on Linode."""

    scope = ANY_TOKEN

    @extend_schema(responses=ProfileSerializer)
    def get(self, request):
        return Response(ProfileSerializer(request.user).data)
