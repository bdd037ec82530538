"""waffle's own Flag is swapped out for gpuadmin.Flag, but waffle's first migration still creates its
tables. Nothing reads or writes them; their foreign keys to auth_user and auth_group only stop
PostgreSQL from truncating those tables (as `manage.py flush` and transactional tests do). The tables
stay, so later waffle migrations still apply; only the dead foreign keys go.
"""

from django.db import migrations

DROP_DEAD_FOREIGN_KEYS = """
DO $$
DECLARE dead record;
BEGIN
    FOR dead IN
        SELECT conname, conrelid::regclass AS tbl FROM pg_constraint
        WHERE contype = 'f' AND conrelid::regclass::text IN ('waffle_flag_users', 'waffle_flag_groups')
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', dead.tbl, dead.conname);
    END LOOP;
END $$;
"""


def drop_dead_foreign_keys(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP_DEAD_FOREIGN_KEYS)  # no parameters: its % signs are format()'s


class Migration(migrations.Migration):
    dependencies = [
        ("gpuadmin", "0002_gpu_instances_flag"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
    ]

    operations = [migrations.RunPython(drop_dead_foreign_keys, migrations.RunPython.noop)]
