"""Tokens keep no part of their secret: the `prefix` column (its first 8 characters) goes, and the audit
trail's names for tokens ("label 1a2b3c4d… of alice") are rewritten by id ("label #12 of alice")."""

import re

from django.db import migrations

PREFIXED = re.compile(r"^(?P<label>.*) \S{1,16}… of (?P<user>.*)$")


def forget_prefixes(apps, schema_editor):
    AuditRecord = apps.get_model("accounts", "AuditRecord")
    for record in AuditRecord.objects.filter(target_type="accounts.apitoken").iterator():
        match = PREFIXED.match(record.target_repr)
        if match is None:
            continue
        record.target_repr = f"{match['label']} #{record.target_id} of {match['user']}"[:255]
        record.save(update_fields=["target_repr"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_account_limits")]

    operations = [
        migrations.RunPython(forget_prefixes, migrations.RunPython.noop),
        migrations.RemoveField(model_name="apitoken", name="prefix"),
    ]
