"""Staff manage pools here; addresses and their history are read-only (claims and releases write them)."""

import copy
import ipaddress

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.utils import timezone

from networking.exceptions import PoolInvalid
from networking.models import Ipv4Address, Ipv4Assignment, Ipv4Pool
from networking.services import pool_check, pool_create, pool_update


class Ipv4PoolForm(forms.ModelForm):
    gateway = forms.GenericIPAddressField(
        protocol="IPv4",
        required=False,
        help_text="The guests' default route; the first host address if empty.",
    )

    class Meta:
        model = Ipv4Pool
        fields = ["region", "network", "prefix_length", "gateway", "reserved"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        pool = self.instance
        if pool.pk is None and not data.get("gateway"):
            network = ipaddress.IPv4Network(f"{data['network']}/{data['prefix_length']}", strict=False)
            data["gateway"] = str(next(network.hosts()))
        candidate = copy.copy(pool)  # the pool as it would be, checked before anything is written
        for name in ("region", "network", "prefix_length", "reserved"):
            if name in data:
                setattr(candidate, name, data[name])
        candidate.gateway = data["gateway"] or pool.gateway
        try:
            pool_check(pool=candidate)
        except PoolInvalid as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, exc.message)
        return data


@admin.register(Ipv4Pool)
class Ipv4PoolAdmin(admin.ModelAdmin):
    form = Ipv4PoolForm
    list_display = ["__str__", "region", "gateway", "held", "free_now", "cooling", "reserved_count"]
    list_filter = ["region"]

    def get_readonly_fields(self, request, obj=None):
        # A pool's network never changes: its addresses are rows (and history). Make another pool.
        return ["region", "network", "prefix_length", "created"] if obj is not None else ["created"]

    def get_queryset(self, request):
        now = timezone.now()
        unheld = Q(addresses__holder__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_held=Count("addresses", filter=~unheld),
                n_reserved=Count("addresses", filter=unheld & Q(addresses__reserved=True)),
                n_cooling=Count(
                    "addresses", filter=unheld & Q(addresses__reserved=False, addresses__free_after__gt=now)
                ),
                n_total=Count("addresses"),
            )
        )

    @admin.display(description="Held", ordering="n_held")
    def held(self, obj) -> int:
        return obj.n_held

    @admin.display(description="Free now")
    def free_now(self, obj) -> int:
        return obj.n_total - obj.n_held - obj.n_reserved - obj.n_cooling

    @admin.display(description="Cooling down")
    def cooling(self, obj) -> int:
        return obj.n_cooling

    @admin.display(description="Reserved")
    def reserved_count(self, obj) -> int:
        return obj.n_reserved

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = pool_update(pool=obj, gateway=data["gateway"] or obj.gateway, reserved=data["reserved"])
        else:
            saved = pool_create(
                region=data["region"],
                network=f"{data['network']}/{data['prefix_length']}",
                gateway=data["gateway"],
                reserved=data["reserved"],
            )
        obj.pk = saved.pk

    def has_delete_permission(self, request, obj=None):
        # Addresses keep their holders' history: a pool is never deleted, only left without free rows.
        return False


@admin.register(Ipv4Address)
class Ipv4AddressAdmin(admin.ModelAdmin):
    list_display = ["address", "pool", "reserved", "holder", "held_since", "free_after"]
    list_filter = ["pool__region", "reserved", ("holder", admin.EmptyFieldListFilter)]
    search_fields = ["address", "holder__label"]
    list_select_related = ["pool", "holder"]
    readonly_fields = ["pool", "address", "reserved", "holder", "held_since", "free_after"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Ipv4Assignment)
class Ipv4AssignmentAdmin(admin.ModelAdmin):
    """Who held an address when: for abuse reports."""

    list_display = ["address", "instance", "assigned_at", "released_at"]
    search_fields = ["address__address", "instance__label"]
    list_select_related = ["address", "instance"]
    date_hierarchy = "assigned_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
