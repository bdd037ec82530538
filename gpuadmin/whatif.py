"""The what-if page: the live fleet's capacity after a scenario, under each policy, beside today's.

A GET form (a scenario is a link one can share); the simulation is provisioning.whatif's, the same the
capacity_whatif command prints. It reads a snapshot and writes nothing.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from inventory.fleet import PROFILES
from inventory.models import Region
from provisioning.placement import POLICIES
from provisioning.whatif import ScenarioError, capacity_whatif, parse_scenario

WHATIF_PERMISSION = "inventory.view_host"
FIELDS = {"requests": "request", "drain": "drain host", "faulty": "faulty card", "add_hosts": "added hosts"}


class WhatIfForm(forms.Form):
    region = forms.ChoiceField()
    requests = forms.CharField(
        required=False,
        label="Requests",
        help_text="A plan mix, placed in this order: g1-gpu-rtx6000-1=20, g1-gpu-rtx6000-4=5",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    drain = forms.CharField(
        required=False,
        label="Drain hosts",
        help_text="Hostnames, separated by spaces or commas.",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    faulty = forms.CharField(
        required=False,
        label="Faulty cards",
        help_text="hostname:PCI address, like us-east-gpu-01:0000:3b:00.0",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    add_hosts = forms.CharField(
        required=False,
        label="Add hosts",
        help_text="profile=count: " + "; ".join(f"{name} ({p.help})" for name, p in PROFILES.items()),
        widget=forms.TextInput(attrs={"size": 60}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [(r.id, f"{r.id}: {r.label}") for r in Region.objects.all()]


def whatif_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(WHATIF_PERMISSION):
        raise PermissionDenied
    form = WhatIfForm(request.GET or None)
    result = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            scenario = parse_scenario(
                region=data["region"],
                requests=[data["requests"]],
                drain=[data["drain"]],
                faulty=[data["faulty"]],
                add_hosts=[data["add_hosts"]],
            )
            result = capacity_whatif(scenario=scenario)
        except ScenarioError as error:
            form.add_error(None, str(error))
    context = {
        **admin.site.each_context(request),
        "title": "What if",
        "form": form,
        "result": result,
        "policies": list(POLICIES),
    }
    return TemplateResponse(request, "admin/gpuadmin/whatif.html", context)
