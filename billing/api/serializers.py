"""Linode's invoice and invoice item objects. Amounts are numbers and `unit_price` a string, as Linode
sends them. `tax_summary` names the rate the invoice was taxed at (empty when none applied)."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gpuadmin.api.fields import Timestamp


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=False, **kwargs)


class TaxSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    tax = _money()


class InvoiceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    date = Timestamp()
    label = serializers.SerializerMethodField()
    subtotal = _money()
    tax = _money()
    total = _money()
    billing_source = serializers.SerializerMethodField()
    tax_summary = serializers.SerializerMethodField()

    def get_label(self, invoice) -> str:
        return "Invoice"

    def get_billing_source(self, invoice) -> str:
        return "linode"

    @extend_schema_field(TaxSummarySerializer(many=True))
    def get_tax_summary(self, invoice) -> list[dict]:
        if invoice.tax_rate_id is None:
            return []
        return [
            {"name": f"{invoice.tax_name} ({invoice.tax_percent.normalize():f}%)", "tax": float(invoice.tax)}
        ]


def price_text(value: Decimal) -> str:
    """1.5000 -> "1.50", 0.0075 -> "0.0075": cents at least, no trailing zeros beyond."""
    text = f"{value.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


class InvoiceItemSerializer(serializers.Serializer):
    amount = _money()
    # `from` is a Python keyword, so the field is put into the class namespace by name.
    locals()["from"] = Timestamp(source="from_at")
    to = Timestamp(source="to_at")
    label = serializers.CharField()
    quantity = serializers.IntegerField()
    type = serializers.CharField()
    unit_price = serializers.SerializerMethodField()
    tax = _money()
    total = _money()
    region = serializers.CharField(allow_null=True)

    def get_unit_price(self, item) -> str:
        return price_text(item.unit_price)
