# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv when missing and install what is missing into it, pinned by constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: demo test lint typecheck layers pytest bench bench-engine clean browser services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mspclaw demo $(ARGS)

# The approval page's end-to-end test drives a real headless Chromium (tests/browser.py). Installed once
# from Debian when absent; `apt-get update` only if the install fails without it. Without apt the
# browser test skips and says why.
CHROMIUM := /usr/bin/chromium
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

# Real services the site-integration tests start on loopback (../shared/reference/test-services.md):
# a Samba AD domain controller, a CUPS print server and an OpenVPN server/client pair. Installed once
# from Debian when a program is missing; nothing starts on install (the fixtures start and stop them).
SERVICE_PKGS := samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools \
	smbclient krb5-user cups cups-client cups-bsd cups-ipp-utils openvpn
APT_SERVICES := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SERVICE_PKGS)

services:
	@if [ -x /usr/sbin/samba ] && [ -x /usr/sbin/cupsd ] && [ -x /usr/sbin/openvpn ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get: Samba, CUPS and OpenVPN cannot be installed, their tests will skip"; \
	else $(APT_SERVICES) || { apt-get update && $(APT_SERVICES); }; fi

browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get: $(CHROMIUM) cannot be installed, the browser test will skip"; \
	else $(APT_CHROMIUM) || { apt-get update && $(APT_CHROMIUM); }; fi

test: $(STAMP) browser services
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/fleet.py $(ARGS)

bench-engine: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/engine.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
