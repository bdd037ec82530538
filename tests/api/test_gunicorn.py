"""The repo's gunicorn.conf.py, live: the API's own limits answer (JSON), not gunicorn's HTML pages.

gunicorn runs in a subprocess with the config file and its own SQLite database in a temporary
directory (migrated first), bound to a port the kernel picks.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gpuadmin.api.limits import MAX_FILTER_LENGTH, MAX_URL_LENGTH

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def server_env(var_dir: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GPUADMIN_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    return {
        **clean,
        "GPUADMIN_SECRET_KEY": "gunicorn-test-" + "k" * 50,
        "GPUADMIN_ALLOWED_HOSTS": "127.0.0.1",
        "GPUADMIN_VAR_DIR": str(var_dir),
        "GPUADMIN_BIND": "127.0.0.1:0",
        "GPUADMIN_WEB_WORKERS": "1",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = server_env(tmp_path_factory.mktemp("gunicorn"))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    log = tmp_path_factory.mktemp("gunicorn-log") / "stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=ROOT, env=env, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := LISTENING.search(log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start: " + log.read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_x_filter_over_the_apis_limit_gets_the_apis_json_400(server):
    value = '{"label": "' + "a" * MAX_FILTER_LENGTH + '"}'  # over 8,192, under gunicorn's limit
    response = requests.get(f"{server}/v4/regions", headers={"X-Filter": value}, timeout=30)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "errors": [{"reason": f"X-Filter is longer than {MAX_FILTER_LENGTH} characters", "field": "X-Filter"}]
    }


def test_a_long_url_gets_the_apis_json_414(server):
    response = requests.get(f"{server}/v4/regions?label=" + "a" * (2 * MAX_URL_LENGTH - 100), timeout=30)
    assert response.status_code == 414
    assert response.json() == {"errors": [{"reason": f"The URL is longer than {MAX_URL_LENGTH} characters."}]}


def test_ordinary_requests_are_served(server):
    response = requests.get(f"{server}/v4/regions", headers={"X-Filter": '{"id": "us-east"}'}, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"data": [], "page": 1, "pages": 1, "results": 0}


def test_what_gunicorn_still_answers_itself_is_what_docs_api_md_says(server):
    # Past gunicorn's own limits (docs/api.md lists them) it answers before the application can.
    header = requests.get(f"{server}/v4/regions", headers={"X-Filter": "a" * 20000}, timeout=30)
    url = requests.get(f"{server}/v4/regions?label=" + "a" * 9000, timeout=30)
    assert (header.status_code, url.status_code) == (431, 414)
    docs = (ROOT / "docs" / "api.md").read_text()
    assert "431" in docs and "16,384" in docs and "8,190" in docs
