from django.db import migrations, models

FUNC = "gpuadmin.tasks.heartbeat"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.get_or_create(
        func=FUNC,
        defaults={"name": "worker heartbeat", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=FUNC).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gpuadmin", "0003_unlink_swapped_waffle_tables"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=64, unique=True)),
                ("beat_at", models.DateTimeField()),
                (
                    "worker",
                    models.CharField(
                        help_text="The machine and process that wrote the last beat.", max_length=255
                    ),
                ),
            ],
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
