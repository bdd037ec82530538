PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_ENV := GPUADMIN_DEBUG=1

.PHONY: install run serve test lint bench format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	scripts/ensure-system-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	@# A new demo database starts with empty simulated hosts too (their guests are kept in var/hypervisor).
	@test -n "$$DATABASE_URL" -o -e var/gpuadmin.sqlite3 || rm -rf var/hypervisor
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py seed_demo --quiet-logins
	scripts/run-demo

# Production: gunicorn with gunicorn.conf.py, settings from the environment (docs/operations.md).
serve: install
	scripts/serve

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(DEV_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(DEV_ENV) $(PY) manage.py check

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) var/*.sqlite3* var/hypervisor .pytest_cache .ruff_cache .hypothesis
