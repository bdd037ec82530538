"""The one-click "Spin up GPU Linode" page: a form laid out like the admin's own, every refusal at once.

The rules stay in provisioning.services: the form asks instance_create_problems for every reason the
create would be refused (the target account's GPU flag, the label, the keys, capacity), shows them all,
and only then calls instance_create, whose own refusal (a race for the last card) shows the same way.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import Account, Origin
from gpuadmin.selectors import gpu_plans_audience, gpu_sellable_by_region
from inventory.models import Image, InstanceType, Region
from provisioning.cloudinit import random_root_pass
from provisioning.exceptions import NoCapacity, ProvisioningError
from provisioning.models import Instance
from provisioning.services import (
    instance_create,
    instance_create_problems,
    validate_authorized_keys,
    validate_label,
)

SPIN_UP_PERMISSION = "provisioning.add_instance"

# The service's names for request fields, mapped to this form's fields (None: above the form).
FORM_FIELDS = {
    "type": "plan",
    "region": "region",
    "image": "image",
    "label": "label",
    "authorized_keys": "authorized_keys",
}

FIELDSETS = [
    ("For whom", {"fields": ["account"]}),
    ("What", {"fields": ["plan", "image"]}),
    ("Where", {"fields": ["region"]}),
    ("Access", {"fields": ["label", "authorized_keys"]}),
]


def can_spin_up(user) -> bool:
    return user.has_perm(SPIN_UP_PERMISSION)


class PlanChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: InstanceType) -> str:
        return f"{obj.id}: {obj.label} (${obj.price_hourly:.2f}/h)"


class RegionSelect(forms.Select):
    """Each region carries what it can sell now per plan, so the page can relabel it when the plan changes."""

    sellable: dict[str, dict[str, int]] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value:
            region = self.sellable.get(str(value), {})
            option["attrs"]["data-sellable"] = json.dumps(region, sort_keys=True)
            option["attrs"]["data-label"] = str(label).split(":")[0]
        return option


class RegionChoiceField(forms.ModelChoiceField):
    widget = RegionSelect

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sellable: dict[str, dict[str, int]] = {}
        self.plan_id: str | None = None

    def label_from_instance(self, obj: Region) -> str:
        name = f"{obj.id} ({obj.label})"
        if self.plan_id is None:
            return name
        return f"{name}: {self.sellable.get(obj.id, {}).get(self.plan_id, 0)} sellable"


class SpinUpForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=Account.objects.filter(active=True).order_by("name"),
        widget=AutocompleteSelect(Instance._meta.get_field("account"), admin.site),
        help_text="Who owns and pays for it. Its own access to GPU plans (the gpu_instances flag) decides, "
        "not yours.",
    )
    plan = PlanChoiceField(
        queryset=InstanceType.objects.filter(type_class=InstanceType.TypeClass.GPU, deprecated=False)
        .select_related("gpu_model")
        .order_by("gpus", "id"),
    )
    image = forms.ModelChoiceField(
        queryset=Image.objects.filter(public=True, deprecated=False).order_by("id")
    )
    region = RegionChoiceField(
        queryset=Region.objects.order_by("id"),
        help_text="Only regions that can place one more of the plan now, with how many more fit.",
    )
    label = forms.CharField(required=False, max_length=64, help_text="Leave empty for a generated label.")
    authorized_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        help_text="Optional SSH public keys for root, one per line. A root password is generated either way "
        "and shown once.",
    )

    def __init__(self, *args, sellable: dict[str, dict[str, int]], **kwargs):
        super().__init__(*args, **kwargs)
        region = self.fields["region"]
        region.sellable = region.widget.sellable = sellable
        plan_id = (self.data.get("plan") if self.is_bound else self.initial.get("plan")) or None
        region.plan_id = plan_id if self.fields["plan"].queryset.filter(pk=plan_id).exists() else None
        if not self.is_bound:
            # Offer what sells now. A bound form accepts every region, so that a region emptied since the
            # page was drawn gets the claim's explanation rather than "not one of the available choices".
            selling = [
                region_id
                for region_id, plans in sellable.items()
                if (plans.get(region.plan_id, 0) if region.plan_id else any(plans.values()))
            ]
            region.queryset = region.queryset.filter(pk__in=selling)
            if not selling:
                region.empty_label = "No region can sell this now"

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        if label:
            _as_validation_error(validate_label, label)
        return label

    def clean_authorized_keys(self) -> str:
        _as_validation_error(validate_authorized_keys, self.key_lines(self.cleaned_data["authorized_keys"]))
        return self.cleaned_data["authorized_keys"]

    @staticmethod
    def key_lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    def add_problem(self, problem: ProvisioningError) -> None:
        field = FORM_FIELDS.get(problem.field or "")
        message = f"No capacity: {problem.detail}" if isinstance(problem, NoCapacity) else problem.message
        if field is not None and field not in self.fields:
            field = None
        if message not in self.errors.get(field or forms.forms.NON_FIELD_ERRORS, []):
            self.add_error(field, message)


def _as_validation_error(check, *args) -> None:
    try:
        check(*args)
    except ProvisioningError as exc:
        raise forms.ValidationError(exc.message) from exc


def spin_up_view(request: HttpRequest) -> HttpResponse:
    """GET: the form, prefilled from the query string. POST: every refusal at once, or the instance."""
    if not can_spin_up(request.user):
        raise PermissionDenied
    sellable = gpu_sellable_by_region()
    if request.method == "POST":
        form = SpinUpForm(request.POST, sellable=sellable)
        root_pass = random_root_pass()
        form.is_valid()
        data = form.cleaned_data
        if all(name in data for name in ("account", "plan", "region", "image")):
            # The service's checks run even when a field failed the form's, so every error shows at once.
            request_fields = {
                "account": data["account"],
                "actor": request.user,
                "plan": data["plan"],
                "region": data["region"],
                "image": data["image"],
                "label": form.data.get("label", "").strip() or None,
                "root_pass": root_pass,
                "authorized_keys": form.key_lines(form.data.get("authorized_keys", "")),
            }
            for problem in instance_create_problems(**request_fields):
                form.add_problem(problem)
        if form.is_valid():
            try:
                instance = instance_create(**request_fields, origin=Origin.STAFF)
            except ProvisioningError as exc:
                form.add_problem(exc)
            else:
                messages.success(
                    request,
                    f'GPU Linode "{instance.label}" (id {instance.pk}) is being created for '
                    f"{instance.account} in {instance.region_id} on {instance.host}. "
                    f"Root password, shown only this once: {root_pass}",
                )
                return redirect(reverse("admin:provisioning_instance_change", args=[instance.pk]))
    else:
        form = SpinUpForm(
            initial={k: v for k, v in request.GET.items() if k in SpinUpForm.base_fields}, sellable=sellable
        )
    context = {
        **admin.site.each_context(request),
        "title": "Spin up GPU Linode",
        "form": form,
        "adminform": helpers.AdminForm(form, FIELDSETS, {}),
        "errors": helpers.AdminErrorList(form, []),
        "media": form.media,
        "gpu_flag": gpu_plans_audience(user=request.user),
    }
    return TemplateResponse(request, "admin/gpuadmin/spin_up.html", context)
