import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gpuadmin.api.fields import Timestamp

ACCOUNT_NAMESPACE = uuid.UUID("0f8d6c2e-3b1a-4e5d-9c7b-2a6e8f4d1c30")


def euuid(account) -> str:
    return str(uuid.uuid5(ACCOUNT_NAMESPACE, str(account.pk))).upper()


class AccountSerializer(serializers.Serializer):
    """Linode's account object. Balances and promotions come from billing (context "billing", see
    AccountDetail); the address is not kept."""

    active_since = Timestamp()
    address_1 = serializers.SerializerMethodField()
    address_2 = serializers.SerializerMethodField()
    balance = serializers.SerializerMethodField()
    balance_uninvoiced = serializers.SerializerMethodField()
    billing_source = serializers.SerializerMethodField()
    capabilities = serializers.SerializerMethodField()
    city = serializers.SerializerMethodField()
    company = serializers.CharField()
    country = serializers.CharField()
    email = serializers.EmailField()
    euuid = serializers.SerializerMethodField()
    first_name = serializers.SerializerMethodField()
    last_name = serializers.SerializerMethodField()
    phone = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField()
    tax_id = serializers.SerializerMethodField()
    zip = serializers.SerializerMethodField()
    active_promotions = serializers.SerializerMethodField()

    def _blank(self, account) -> str:
        return ""

    get_address_1 = get_address_2 = get_city = _blank
    get_first_name = get_last_name = get_phone = get_state = get_tax_id = get_zip = _blank

    def get_balance(self, account) -> float:
        billing = self.context.get("billing")
        return float(billing.balance) if billing else 0.0

    def get_balance_uninvoiced(self, account) -> float:
        billing = self.context.get("billing")
        return float(billing.balance_uninvoiced) if billing else 0.0

    def get_billing_source(self, account) -> str:
        return "linode"

    def get_capabilities(self, account) -> list[str]:
        return ["Linodes", "GPU Linodes"] if self.context.get("gpu_plans_visible") else ["Linodes"]

    def get_euuid(self, account) -> str:
        return euuid(account)

    def get_active_promotions(self, account) -> list[dict]:
        billing = self.context.get("billing")
        return billing.active_promotions if billing else []


class ReferralsSerializer(serializers.Serializer):
    code = serializers.CharField()
    url = serializers.CharField()
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    pending = serializers.IntegerField()
    credit = serializers.FloatField()


class ProfileSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    uid = serializers.IntegerField(source="pk")
    timezone = serializers.SerializerMethodField()
    email_notifications = serializers.SerializerMethodField()
    restricted = serializers.SerializerMethodField()
    two_factor_auth = serializers.SerializerMethodField()
    authorized_keys = serializers.SerializerMethodField()
    ip_whitelist_enabled = serializers.SerializerMethodField()
    lish_auth_method = serializers.SerializerMethodField()
    referrals = serializers.SerializerMethodField()
    authentication_type = serializers.SerializerMethodField()
    verified_phone_number = serializers.SerializerMethodField()
    user_type = serializers.SerializerMethodField()

    def get_timezone(self, user) -> str:
        return "UTC"

    def get_email_notifications(self, user) -> bool:
        return True

    def get_restricted(self, user) -> bool:
        return False  # no per-user grants: every member acts for the whole account

    def get_two_factor_auth(self, user) -> bool:
        return False

    def get_authorized_keys(self, user) -> list[str]:
        return []

    def get_ip_whitelist_enabled(self, user) -> bool:
        return False

    def get_lish_auth_method(self, user) -> str:
        return "disabled"

    @extend_schema_field(ReferralsSerializer)
    def get_referrals(self, user) -> dict:
        return {"code": "", "url": "", "total": 0, "completed": 0, "pending": 0, "credit": 0.0}

    def get_authentication_type(self, user) -> str:
        return "password"

    def get_verified_phone_number(self, user) -> str | None:
        return None

    def get_user_type(self, user) -> str:
        return "default"
