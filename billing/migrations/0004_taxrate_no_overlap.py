"""On PostgreSQL, the database itself refuses a country's second rate for any part of the same time:
an exclusion constraint over the half-open date range [valid_from, valid_until). SQLite has no such
constraint; billing.services.tax_rate_save checks the same rule for every write there too."""

from django.db import migrations

CONSTRAINT = "taxrate_no_overlap_per_country"


def add(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        f"ALTER TABLE billing_taxrate ADD CONSTRAINT {CONSTRAINT} EXCLUDE USING gist "
        "(country WITH =, daterange(valid_from, valid_until, '[)') WITH &&)"
    )


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE billing_taxrate DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_tax_rates")]

    operations = [migrations.RunPython(add, remove)]
