"""The console's one search box: a page listing the accounts, instances, hosts and GPUs that match."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from gpuadmin.selectors import console_search

# What each kind of hit needs to be shown, and the admin page it links to.
KINDS = {
    "account": ("accounts.view_account", "admin:accounts_account_change", "Accounts"),
    "instance": ("provisioning.view_instance", "admin:provisioning_instance_change", "Instances"),
    "host": ("inventory.view_host", "admin:inventory_host_change", "Hosts"),
    "gpu": ("inventory.view_gpudevice", "admin:inventory_gpudevice_change", "GPUs"),
}


def search_view(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:200]
    kinds = [kind for kind, (perm, _, _) in KINDS.items() if request.user.has_perm(perm)]
    results = console_search(query=query, kinds=kinds)
    sections = [
        {"kind": kind, "title": KINDS[kind][2], "url_name": KINDS[kind][1], "hits": results.hits[kind]}
        for kind in kinds
        if kind in results.hits
    ]
    context = {
        **admin.site.each_context(request),
        "title": f"Search: {results.query}" if results.query else "Search",
        "console_query": results.query,
        "results": results,
        "sections": sections,
    }
    return TemplateResponse(request, "admin/gpuadmin/search.html", context)
