# The two commands: `make run` serves the model, `make test` runs the tests.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080
PROCESSES ?= 4
export PORT PROCESSES

.PHONY: run test lint bench traces nginx clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# nginx from Debian's packages, installed when missing (needs root).
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; \
	  else \
	    echo "nginx is missing: run 'sudo apt-get install nginx' or 'make run' as root" >&2; \
	    exit 1; \
	  fi; }

run: $(VENV)/.installed nginx
	$(PY) -m deploy.localstack

test: $(VENV)/.installed-dev nginx
	$(PY) -m pytest

# The serving and training benchmark on loopback (a few minutes; needs wrk).
bench: $(VENV)/.installed-dev nginx
	$(PY) bench/run.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# A LightStep collector on 127.0.0.1:8360 that prints each trace as a tree.
traces: $(VENV)/.installed-dev
	$(PY) tools/traces.py

clean:
	rm -rf var .pytest_cache
