"""The roles again, once the models that came after 0005 exist (networking's pools and addresses,
inventory's capacity samples): each role reads them too."""

from django.db import migrations


def refresh_roles(apps, schema_editor):
    from gpuadmin.roles import roles_ensure

    roles_ensure(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("gpuadmin", "0005_staff_roles"),
        ("accounts", "0006_api_token_no_prefix"),
        ("inventory", "0011_image_kernel_boot"),
        ("networking", "0001_initial"),
        ("provisioning", "0010_instance_user_data"),
    ]

    operations = [migrations.RunPython(refresh_roles, migrations.RunPython.noop)]
