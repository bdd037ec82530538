"""docs/operations.md keeps up with /metrics: every exported family has PromQL there, and the alert
rules it gives are valid Prometheus rules (checked with promtool where it is installed)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import make_gpu_host, make_gpu_plan, make_instance

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def alert_rules() -> str:
    return re.search(r"```yaml\n(groups:.*?)```", DOC.read_text(), re.S).group(1)


@pytest.mark.django_db
def test_every_exported_family_is_used_in_a_promql_example(client):
    make_gpu_host(), make_gpu_plan(1)
    from provisioning.models import Job

    instance = make_instance(plan=make_gpu_plan(1))
    Job.objects.create(
        instance=instance, account_id=instance.account_id, action="linode_boot", status="scheduled"
    )
    client.get("/v4/regions")
    families = {f.name for f in text_string_to_metric_families(client.get("/metrics").content.decode())}
    assert {"gpuadmin_gpus", "gpuadmin_jobs", "gpuadmin_http_request_duration_seconds"} <= families
    families = {name for name in families if not name.endswith("_created")}  # single-process extras
    promql = " ".join(re.findall(r"expr: (.*?)(?=\n  - |\Z)", alert_rules(), re.S)) + DOC.read_text()
    missing = [
        name
        for name in sorted(families)
        if not re.search(rf"\b{name}(_total|_bucket|_count)?\b[\[{{)]", promql)
    ]
    assert not missing, missing


def test_the_alert_rules_are_valid_prometheus_rules(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    rules = tmp_path / "rules.yml"
    rules.write_text(alert_rules())
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout
