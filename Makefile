# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first, idempotently.
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := mininet cgroup-tools iproute2 iputils-ping bridge-utils net-tools
STAMP := $(VENV)/.edgetrain-installed
# Mininet is packaged for the system interpreter only; the venv sees just that one package.
MININET_SRC := /usr/lib/python3/dist-packages/mininet

.PHONY: setup system-packages venv mininet-link test test-fast lint-imports demo clean

setup: system-packages venv mininet-link

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

# torch==2.13.0 (pinned in pyproject.toml) resolves to the CPU build that pip finds on this disk.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,zeus]'
	touch $@

mininet-link: venv system-packages
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	[ -e "$$site/mininet" ] || ln -sfn $(MININET_SRC) "$$site/mininet"

# The import contract (.importlinter) first: a layer that imports upward fails the build.
# The live-step fidelity test first, alone, on a quiet machine: it compares timings, and on this 2-core
# VM it missed its 15% target after the rest of the suite had run while passing alone.
test: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests/mininet/test_fidelity.py
	$(PY) -m pytest -q --ignore=tests/mininet/test_fidelity.py

# This process only: tests/unit (no training processes, no Mininet).
test-fast: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests/unit

lint-imports: venv
	$(VENV)/bin/lint-imports --no-cache

demo: setup
	$(PY) -m edgetrain.app.demo

clean:
	rm -rf runs .pytest_cache
