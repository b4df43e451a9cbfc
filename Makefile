# Quetzal: `make run` serves the whole platform on embedded defaults; `make test` runs everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VENDOR := static/vendor
# The code held to mypy (with django-stubs) inside `make test`.
TYPED := tenants/services tenants/sso/services.py tenants/sso/domains.py tenants/sso/dnscheck.py tenants/sso/discovery.py tenants/sso/adapter.py tenants/sso/flows.py tenants/sso/directory.py tenants/sso/ldap.py tenants/sso/saml.py hosts/services desktops/services billing/services hosts/hypervisor hosts/scheduling desktops/state.py

.PHONY: run test bench lint format vendor migrate venv clean system libvirt-binding mutation

# libvirt-python compiles against the system libvirt. Without libvirt-dev (a bare machine where we
# are not root) the platform still runs, with no hypervisor until the operator installs one; under
# CI=true that is an error, never a quiet fallback.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if pkg-config --exists libvirt 2>/dev/null; then \
		$(PIP) install -q -r requirements-dev.txt; \
	elif [ "$$CI" = true ]; then \
		echo "ERROR: libvirt development files missing (apt-get install libvirt-dev pkg-config)"; exit 1; \
	else \
		echo "NOTE: libvirt development files not found; installing without libvirt-python" \
		     "(apt-get install libvirt-dev pkg-config to manage hypervisors)"; \
		grep -v '^libvirt-python' requirements.txt > $(VENV)/requirements-nolibvirt.txt; \
		sed 's#^-r requirements.txt#-r requirements-nolibvirt.txt#' requirements-dev.txt > $(VENV)/requirements-dev-nolibvirt.txt; \
		cd $(VENV) && ../$(PIP) install -q -r requirements-dev-nolibvirt.txt; \
	fi
	touch $@

# A venv made before libvirt-dev arrived gets the binding as soon as the headers are there.
libvirt-binding: $(VENV)/.installed
	@if ! $(PY) -c "import libvirt" 2>/dev/null && pkg-config --exists libvirt 2>/dev/null; then \
		$(PIP) install -q "$$(grep '^libvirt-python' requirements.txt)"; \
	fi

# As root (or with passwordless sudo): install libvirt + QEMU and start libvirtd when no service
# manager does. Otherwise one line says what to install, and the portal runs without a hypervisor.
system:
	@bash scripts/system-packages
	@if [ "$$(id -u)" -eq 0 ] && command -v libvirtd >/dev/null; then \
		bash scripts/start-libvirtd >/dev/null 2>&1 || echo "NOTE: libvirtd did not start (see /var/log/libvirt/)"; \
	fi

venv: $(VENV)/.installed

run: system libvirt-binding
	$(PY) manage.py run_platform

# The suite runs in two parts: the tests on the database, Redis and libvirt's test driver spread over one worker
# per core (pytest-xdist; tests.settings gives each worker its own Redis database), then the heavy ones in two lanes
# at once: those that drive real QEMU guests or namespaced hosts one at a time (they share qemu:///system and the
# machine's bridges), and beside them those that drive Chromium, Celery workers or the fuzzer on the test driver
# (QUETZAL_TEST_LANE=light: their own test and Redis databases; their output follows the first lane's). All always
# run; any failing fails the target. PYTEST_ARGS (paths, -k …) runs just that, in one plain pytest.
HEAVY := qemu or browser or multihost or fuzz or worker
HYPERVISOR := qemu or multihost
TEST_WORKERS ?= auto
LIGHT_LOG := test-artifacts/light-lane.log

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(TYPED)
ifeq ($(strip $(PYTEST_ARGS)),)
	@status=0; \
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup --ds tests.settings -m "not ($(HEAVY))" || status=1; \
	mkdir -p $(dir $(LIGHT_LOG)); \
	QUETZAL_TEST_LANE=light $(VENV)/bin/pytest --ds tests.settings --basetemp=/tmp/quetzal-light-lane \
		-m "($(HEAVY)) and not ($(HYPERVISOR))" >$(LIGHT_LOG) 2>&1 & light=$$!; \
	$(VENV)/bin/pytest -m "$(HYPERVISOR)" || status=1; \
	wait $$light || status=1; \
	echo "== the light lane (browser, workers, fuzz), from $(LIGHT_LOG)"; cat $(LIGHT_LOG); \
	exit $$status
else
	$(VENV)/bin/pytest $(PYTEST_ARGS)
endif

bench: venv
	@set -e; for b in bench/*.py; do [ "$$b" = bench/benchdb.py ] && continue; echo "== $$b"; $(PY) $$b; done

# Mutation testing of the core modules (slow, outside `make test`): mutmut per module against its covering
# tests on PostgreSQL (DATABASE_URL). Modules and equivalent mutants: [tool.mutmut] in pyproject.toml.
# MUTATION_ARGS="quotas state" picks modules; MUTATION_CHILDREN=2 runs two mutants at once.
mutation: venv
	$(PY) scripts/mutation.py $(MUTATION_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: venv
	$(PY) manage.py migrate

# Front-end libraries come from the npm registry at build time and are committed under static/vendor,
# so installs and `make run` never need Node.js nor the internet.
# noVNC becomes one minified ES module (esbuild, from the npm registry too): one request per console, not 52.
vendor:
	npm install --no-audit --no-fund
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	# axe-core is for the browser tests only (they inject it into each page); no page loads it.
	cp node_modules/axe-core/axe.min.js $(VENDOR)/
	node_modules/.bin/esbuild scripts/novnc-bundle.js --bundle --format=esm --minify --target=es2022 \
		--legal-comments=eof --outfile=$(VENDOR)/novnc.min.js
	cp node_modules/@novnc/novnc/LICENSE.txt $(VENDOR)/novnc.LICENSE.txt

clean:
	rm -rf $(VENV) var
