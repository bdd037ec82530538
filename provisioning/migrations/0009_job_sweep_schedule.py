from django.db import migrations

FUNC = "provisioning.tasks.sweep_jobs"


def create_schedule(apps, schema_editor):
    """Every minute: a job whose worker died (lease expired) or a card left cleaning is queued again."""
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        func=FUNC,
        defaults={
            "name": "sweep jobs and resets whose worker died",
            "schedule_type": "I",  # every `minutes`
            "minutes": 1,
            "repeats": -1,
            # 1,440 runs a day: keep failures in the task list, not every success.
            "kwargs": "{'q_options': {'save': False}}",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=FUNC).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0008_job_lease_superseded"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
