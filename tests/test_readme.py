"""Every command the README gives works as written, from a state like a fresh clone's: no var/ directory
(the database, the simulated hosts), no settings in the environment but what the README says to set.

The commands are read from the README itself, so a command added there without being run here fails
`test_every_readme_command_is_run_here`. Two are checked rather than run, because running them here
would run this very suite again: `.ci/run` (the CI, which runs this test) and `make bench` (ten
minutes of benchmarks); their targets are checked to exist and to run what the README says.

This test runs for about a minute and a half (it installs nothing, but migrates and seeds a demo,
starts it, starts the production server, lints and runs a small `make test`): it is the README's promise.
"""

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from benchmarks.stack import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.live

# Every command the README shows, and how this file exercises it.
RUN = {
    "make run": "test_make_run_then_a_token_as_the_readme_says",
    "HOST=0.0.0.0 PORT=9000 make run": "test_make_run_then_a_token_as_the_readme_says",
    ".venv/bin/python manage.py create_api_token alice": "test_make_run_then_a_token_as_the_readme_says",
    "make test": "test_make_test_and_make_lint",
    "make lint": "test_make_test_and_make_lint",
    "make serve": "test_make_serve",
    "make bench": "test_the_commands_not_run_here_exist",
    ".ci/run": "test_the_commands_not_run_here_exist",
}


def readme_commands() -> set[str]:
    """Lines of the README's sh blocks (without comments) and inline code that starts like a command."""
    found = set()
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                found.add(command)
    for inline in re.findall(r"`([^`\n]+)`", README):
        if re.match(r"(make \w+|\.ci/run|\.venv/bin/python |python3? |[A-Z_]+=\S+ )", inline):
            found.add(inline.strip())
    return found


def clean_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """A shell with none of gpuadmin's settings (not even the test suite's), the database left to the
    default (SQLite in var_dir, as on a fresh clone), the simulated hosts in var_dir too."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GPUADMIN_", "PYTEST", "DJANGO_")) and k not in ("DATABASE_URL", "MAKEFLAGS")
    }
    env.update(GPUADMIN_VAR_DIR=str(var_dir), **extra)
    return env


def stop(process: subprocess.Popen) -> None:
    """As a terminal's Ctrl-C: the signal reaches every process the command started."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code in (200, 503)
    except requests.RequestException:
        return False


def test_every_readme_command_is_run_here():
    assert readme_commands() == set(RUN), "a README command is new or gone: run it in this file"


@pytest.fixture
def var_dir():
    path = Path(tempfile.mkdtemp(prefix="gpuadmin-readme-"))  # short: the hypervisor socket lives here
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_make_run_then_a_token_as_the_readme_says(var_dir):
    port = free_port()
    log = var_dir / "make-run.log"
    with open(log, "w") as output:
        demo = subprocess.Popen(
            ["bash", "-c", f"HOST=0.0.0.0 PORT={port} make run"],  # the README's line, on a free port
            cwd=ROOT, env=clean_env(var_dir), stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: demo.poll() is not None or answers(url + "/v4/regions"), timeout=240, what="make run"
        )
        assert demo.poll() is None, log.read_text()[-3000:]

        # A second terminal: no GPUADMIN_DEBUG, nothing set, the README's command as written.
        issued = subprocess.run(
            [".venv/bin/python", "manage.py", "create_api_token", "alice"],
            cwd=ROOT, env=clean_env(var_dir), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", token), issued.stdout
        types = requests.get(
            url + "/v4/linode/types", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()["data"]
        assert any(t["gpus"] for t in types)  # alice, an employee account, sees the dark-launched plans

        # The README's demo logins: admin signs in to the admin site.
        session = requests.Session()
        login = session.get(url + "/admin/login/", timeout=30)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        signed_in = session.post(
            url + "/admin/login/?next=/admin/",
            data={"username": "admin", "password": "gpuadmin-admin", "csrfmiddlewaretoken": csrf},
            headers={"Referer": url + "/admin/login/"}, timeout=30,
        )  # fmt: skip
        assert signed_in.status_code == 200 and "Log out" in signed_in.text, signed_in.text[:500]
    finally:
        stop(demo)


def test_make_test_and_make_lint(var_dir):
    # `make test` runs the whole suite (this file included); here it runs one small test file through
    # the same target, which reads PYTEST_ARGS from the environment as make does.
    small = clean_env(var_dir, PYTEST_ARGS="tests/gpuadmin/test_settings.py -q -p no:cacheprovider")
    tested = subprocess.run(
        ["make", "test"], cwd=ROOT, env=small, capture_output=True, text=True, timeout=300
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert re.search(r"\d+ passed", tested.stdout)
    linted = subprocess.run(
        ["make", "lint"], cwd=ROOT, env=clean_env(var_dir), capture_output=True, text=True, timeout=300
    )
    assert linted.returncode == 0, linted.stdout[-3000:] + linted.stderr[-3000:]
    assert "No changes detected" in linted.stdout


def test_make_serve(var_dir):
    """The production server with what the README says production needs (a key, allowed hosts; the
    database here is a migrated SQLite)."""
    port = free_port()
    env = clean_env(
        var_dir,
        GPUADMIN_SECRET_KEY="readme-test-" + "k7" * 25,
        GPUADMIN_ALLOWED_HOSTS="127.0.0.1,localhost",
        GPUADMIN_BIND=f"127.0.0.1:{port}",
        GPUADMIN_WEB_WORKERS="1",
    )
    subprocess.run(
        [".venv/bin/python", "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    log = var_dir / "make-serve.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            ["make", "serve"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: server.poll() is not None or answers(url + "/healthz"), timeout=180, what="make serve"
        )
        assert server.poll() is None, log.read_text()[-3000:]
        assert requests.get(url + "/v4/regions", timeout=30).json()["data"] == []  # no demo data
        static = requests.get(url + "/admin/login/", timeout=30)
        assert static.status_code == 200
    finally:
        stop(server)


def test_the_commands_not_run_here_exist():
    dry = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "-m benchmarks" in dry.stdout
    ci = (ROOT / ".ci" / "run").read_text()
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    assert "make lint" in ci and "make test" in ci
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=False).returncode == 0
