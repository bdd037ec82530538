"""Staff pages of the admin site: the capacity dashboard and the one-click "Spin up GPU Linode" form.

The views read through selectors and write through provisioning.services.instance_create; every rule
(who may see GPU plans, what a label or a password must be, what fits where) stays in those.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import Account, Origin
from gpuadmin.selectors import fleet_overview, gpu_plans_audience
from inventory.models import Image, InstanceType, Region
from provisioning.cloudinit import random_root_pass
from provisioning.exceptions import NoCapacity, ProvisioningError
from provisioning.services import instance_create

SPIN_UP_PERMISSION = "provisioning.add_instance"

# The service's names for request fields, mapped to this form's fields.
FORM_FIELDS = {
    "type": "plan",
    "region": "region",
    "image": "image",
    "label": "label",
    "authorized_keys": "authorized_keys",
}


def can_spin_up(user) -> bool:
    return user.has_perm(SPIN_UP_PERMISSION)


def index_context(request: HttpRequest) -> dict:
    """The admin index: capacity per region and GPU model at a glance, the GPU flag, the spin-up button."""
    return {
        "fleet": fleet_overview(with_hosts=False),
        "gpu_flag": gpu_plans_audience(user=request.user),
        "can_spin_up": can_spin_up(request.user),
    }


def capacity_view(request: HttpRequest) -> HttpResponse:
    """Every host of a region (or of all), with free GPUs, cores and memory per NUMA node."""
    region = request.GET.get("region") or None
    fleet = fleet_overview(region=region)
    context = {
        **admin.site.each_context(request),
        "title": "Capacity" + (f": {region}" if region in fleet.region_ids else ""),
        "fleet": fleet,
        "selected_region": region if region in fleet.region_ids else None,
        "gpu_flag": gpu_plans_audience(user=request.user),
        "can_spin_up": can_spin_up(request.user),
    }
    return TemplateResponse(request, "admin/gpuadmin/capacity.html", context)


class PlanChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: InstanceType) -> str:
        return f"{obj.id}: {obj.label} (${obj.price_hourly:.2f}/h)"


class RegionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Region) -> str:
        return f"{obj.id} ({obj.label})"


class SpinUpForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=Account.objects.filter(active=True).order_by("name"), help_text="Who owns and pays for it."
    )
    plan = PlanChoiceField(
        queryset=InstanceType.objects.filter(type_class=InstanceType.TypeClass.GPU, deprecated=False)
        .select_related("gpu_model")
        .order_by("gpus", "id"),
    )
    region = RegionChoiceField(queryset=Region.objects.order_by("id"))
    image = forms.ModelChoiceField(
        queryset=Image.objects.filter(public=True, deprecated=False).order_by("id")
    )
    label = forms.CharField(required=False, max_length=64, help_text="Leave empty for a generated label.")
    authorized_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Optional SSH public keys for root, one per line. A root password is generated either way "
        "and shown once.",
    )

    def keys(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["authorized_keys"].splitlines() if line.strip()]


def spin_up_view(request: HttpRequest) -> HttpResponse:
    """GET: the form, prefilled from the query string. POST: create the instance, or say why not."""
    if not can_spin_up(request.user):
        raise PermissionDenied
    if request.method == "POST":
        form = SpinUpForm(request.POST)
        if form.is_valid():
            root_pass = random_root_pass()
            data = form.cleaned_data
            try:
                instance = instance_create(
                    account=data["account"],
                    actor=request.user,
                    plan=data["plan"],
                    region=data["region"],
                    image=data["image"],
                    label=data["label"] or None,
                    root_pass=root_pass,
                    authorized_keys=form.keys(),
                    origin=Origin.STAFF,
                )
            except NoCapacity as exc:
                form.add_error(None, f"No capacity: {exc.detail}")
            except ProvisioningError as exc:
                form.add_error(FORM_FIELDS.get(exc.field or ""), exc.message)
            else:
                messages.success(
                    request,
                    f'GPU Linode "{instance.label}" (id {instance.pk}) is being created for '
                    f"{instance.account} in {instance.region_id} on {instance.host}. "
                    f"Root password, shown only this once: {root_pass}",
                )
                return redirect(reverse("admin:provisioning_instance_change", args=[instance.pk]))
    else:
        form = SpinUpForm(initial={k: v for k, v in request.GET.items() if k in SpinUpForm.base_fields})
    context = {
        **admin.site.each_context(request),
        "title": "Spin up GPU Linode",
        "form": form,
        "gpu_flag": gpu_plans_audience(user=request.user),
    }
    return TemplateResponse(request, "admin/gpuadmin/spin_up.html", context)
