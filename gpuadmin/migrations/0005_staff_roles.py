from django.db import migrations


def create_roles(apps, schema_editor):
    from gpuadmin.roles import roles_ensure

    roles_ensure(apps)


def remove_roles(apps, schema_editor):
    from gpuadmin.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gpuadmin", "0004_worker_heartbeat"),
        ("accounts", "0005_account_limits"),
        ("billing", "0004_taxrate_no_overlap"),
        ("inventory", "0008_host_libvirt_errors"),
        ("provisioning", "0009_job_sweep_schedule"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
