"""Validate XML against libvirt's own RelaxNG schemas with virt-xml-validate (libvirt-clients + xmllint)."""

import os
import shutil
import subprocess
import tempfile

import pytest


def assert_valid(xml: str, schema: str = "domain") -> None:
    missing = [tool for tool in ("virt-xml-validate", "xmllint") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed: run scripts/ensure-system-packages --ci"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as handle:
        handle.write(xml)
        handle.flush()
        result = subprocess.run(
            ["virt-xml-validate", handle.name, schema], capture_output=True, text=True, check=False
        )
    assert result.returncode == 0, (
        f"libvirt's {schema} schema rejects the XML:\n{result.stderr}{result.stdout}"
    )
