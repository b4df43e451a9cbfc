# Quetzal: `make run` serves the whole platform on embedded defaults; `make test` runs everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VENDOR := static/vendor

.PHONY: run test bench lint format vendor migrate venv clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) manage.py run_platform

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: venv
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

lint: venv
	$(VENV)/bin/ruff check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: venv
	$(PY) manage.py migrate

# Front-end libraries come from the npm registry at build time and are committed under static/vendor,
# so installs and `make run` never need Node.js nor the internet.
vendor:
	npm install --no-audit --no-fund
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/novnc
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp -r node_modules/@novnc/novnc/core node_modules/@novnc/novnc/vendor node_modules/@novnc/novnc/LICENSE.txt $(VENDOR)/novnc/

clean:
	rm -rf $(VENV) var
