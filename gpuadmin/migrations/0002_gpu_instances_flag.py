from django.db import migrations

GPU_FLAG = "gpu_instances"
PROVISIONING_SWITCH = "provisioning_enabled"


def create_flags(apps, schema_editor):
    Flag = apps.get_model("gpuadmin", "Flag")
    Switch = apps.get_model("waffle", "Switch")
    Flag.objects.get_or_create(
        name=GPU_FLAG,
        defaults={
            "employee_accounts": True,
            "note": "GPU plans (g1-gpu-*). Dark launch: employee accounts. Launch: set Everyone to Yes.",
        },
    )
    Switch.objects.get_or_create(
        name=PROVISIONING_SWITCH,
        defaults={"active": True, "note": "Kill switch: off refuses new creates and holds queued tasks."},
    )


def remove_flags(apps, schema_editor):
    apps.get_model("gpuadmin", "Flag").objects.filter(name=GPU_FLAG).delete()
    apps.get_model("waffle", "Switch").objects.filter(name=PROVISIONING_SWITCH).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gpuadmin", "0001_initial"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
    ]

    operations = [migrations.RunPython(create_flags, remove_flags)]
