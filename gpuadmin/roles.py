"""Staff roles: Django groups with the permissions each job needs, created by a data migration
(gpuadmin/migrations/0005_staff_roles.py) and kept in step by `roles_ensure`.

- Support: reads everything staff can read in the console, changes nothing.
- Capacity operators: hosts (enable, drain, maintenance, disable), GPUs (faulty, return to service,
  cleaned), spin up, and the instance's own buttons (boot, shut down, reboot, resize, retry). Deleting an
  instance destroys a customer's data and stays with superusers.
- Billing: accounts (fields, members, limits, the GPU trial), invoices (read, PDF, CSV) and tax rates.

Everyone in a role also has Support's reads. A permission added to a model later joins a role by naming
it here and running `roles_ensure` in a new migration.
"""

from django.apps import apps as global_apps

__all__ = ["ROLES", "READ_APPS", "roles_ensure"]

SUPPORT = "Support"
CAPACITY = "Capacity operators"
BILLING = "Billing"

# Every model of these apps can be read by every role.
READ_APPS = ("accounts", "inventory", "provisioning", "billing", "gpuadmin", "networking")

ROLES: dict[str, tuple[str, ...]] = {
    SUPPORT: (),
    CAPACITY: (
        "inventory.change_host",
        "inventory.change_gpudevice",
        "provisioning.add_instance",
        "provisioning.change_instance",
    ),
    BILLING: (
        "accounts.add_account",
        "accounts.change_account",
        "accounts.add_membership",
        "accounts.change_membership",
        "accounts.delete_membership",
        "billing.add_taxrate",
        "billing.change_taxrate",
        "billing.delete_taxrate",
    ),
}


def roles_ensure(apps=global_apps) -> None:
    """Create the groups if missing and give each exactly its permissions (reads included). Takes the
    migration's app registry, or the live one (tests whose flush emptied the tables call it)."""
    from django.contrib.auth.management import create_permissions

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    # Permissions are made after migrations (post_migrate); a fresh database needs them now.
    for config in apps.get_app_configs():
        # A migration's app configs are stubs without models_module, which create_permissions asks for.
        stub = getattr(config, "models_module", None) is None
        if stub:
            config.models_module = True
        create_permissions(config, verbosity=0, apps=apps)
        if stub:
            config.models_module = None
    reads = list(
        Permission.objects.filter(content_type__app_label__in=READ_APPS, codename__startswith="view_")
    )
    for name, extra in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = list(reads)
        for perm in extra:
            app_label, codename = perm.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
