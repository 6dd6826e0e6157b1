# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv when missing and install what is missing into it, pinned by constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: sign-library playbook-snapshots demo test lint typecheck layers pytest bench bench-engine clean browser services samba containers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) samba
	$(BIN)/mspclaw demo $(ARGS)

# The approval page's end-to-end test drives a real headless Chromium (tests/browser.py). Installed once
# from Debian when absent; `apt-get update` only if the install fails without it. Without apt the
# browser test skips and says why.
CHROMIUM := /usr/bin/chromium
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

# Real services the site-integration tests start on loopback (../shared/reference/test-services.md):
# a Samba AD domain controller, a CUPS print server and an OpenVPN server/client pair. Installed once
# from Debian when a program is missing; nothing starts on install (the fixtures start and stop them).
SAMBA_PKGS := samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools
SERVICE_PKGS := $(SAMBA_PKGS) smbclient krb5-user cups cups-client cups-bsd cups-ipp-utils openvpn
APT_SERVICES := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SERVICE_PKGS)
APT_SAMBA := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SAMBA_PKGS)

services:
	@if [ -x /usr/sbin/samba ] && [ -x /usr/sbin/cupsd ] && [ -x /usr/sbin/openvpn ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get: Samba, CUPS and OpenVPN cannot be installed, their tests will skip"; \
	else $(APT_SERVICES) || { apt-get update && $(APT_SERVICES); }; fi

# The demo's lockout and password-reset tickets run against a throwaway Samba AD DC (src/mspclaw/cli/
# demo_directory.py): only its packages, installed once as root when missing. Without apt, without root
# or when the install fails the demo still runs and says in one line why it skipped those two tickets.
samba:
	@if [ -x /usr/sbin/samba ] && command -v samba-tool >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ]; then :; \
	else $(APT_SAMBA) || { apt-get update && $(APT_SAMBA); } || echo "Samba could not be installed with apt"; fi

browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get: $(CHROMIUM) cannot be installed, the browser test will skip"; \
	else $(APT_CHROMIUM) || { apt-get update && $(APT_CHROMIUM); }; fi

# The deployment tests (tests/deploy, marker `containers`) build the container images and run them with
# podman (runc, cgroupfs; no Docker engine, no image pulls: the base is made with debootstrap, cached in
# /var/tmp/mspclaw-containers). Installed once from Debian when a program is missing; without apt they
# skip and say why.
CONTAINER_PKGS := podman buildah runc debootstrap
APT_CONTAINERS := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(CONTAINER_PKGS)

containers:
	@if command -v podman >/dev/null 2>&1 && command -v buildah >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 \
	    && command -v debootstrap >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get: podman, runc and debootstrap cannot be installed, the container tests will skip"; \
	else $(APT_CONTAINERS) || { apt-get update && $(APT_CONTAINERS); }; fi

test: $(STAMP) browser services containers
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src tests bench

layers: $(STAMP)
	$(BIN)/lint-imports

# The shipped library is signed with the official key (docs/playbook-registry.md); its public half is
# src/mspclaw/playbooks/official_keys.json. Run after changing a library playbook; only changed ones get a
# new signature. The contribution check's snapshots are recorded again with Samba and the local Graph tenant.
OFFICIAL_KEY ?= $(HOME)/.config/mspclaw/official-playbooks.key
sign-library: $(STAMP)
	$(BIN)/mspclaw playbooks sign src/mspclaw/playbooks/library --key $(OFFICIAL_KEY) --signee "MSPclaw official playbooks"
	$(BIN)/mspclaw playbooks verify src/mspclaw/playbooks/library

playbook-snapshots: $(STAMP) services
	$(BIN)/python -m pytest -q tests/playbooks/record_playbook_snapshots.py

pytest: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/fleet.py $(ARGS)

bench-engine: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/engine.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
