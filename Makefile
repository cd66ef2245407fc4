# pilothouse — two commands: `make up` runs a cluster, `make test` checks everything.
#
# `make install` is idempotent and quick when nothing is missing: it installs the
# Debian packages the cluster needs (apt-get, as root) and the Python package with
# its dependencies into .venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DATA_DIR ?= /var/lib/pilothouse
ARGS ?=

# Debian packages the node needs (containers, networking, images; conntrack to drop the
# stale UDP flows of a Service whose endpoints went away; busybox-static for
# `pilothouse images busybox`, a first image without a registry) and that the test
# suite drives (local registry, etcd for the HA path, skopeo as the image-copy baseline
# of bench/pod_startup.py, chromium and its driver for the dashboard's browser tests).
# APT_TEST_DEBS are only downloaded, never installed: the
# tests build stand-in container images from them (an nginx for the python client's
# e2e suite).
APT_PACKAGES := ca-certificates iproute2 iptables nftables conntrack crun runc conmon \
	containernetworking-plugins util-linux zstd busybox-static
APT_TEST_PACKAGES := docker-registry etcd-server skopeo python3-minimal chromium chromium-driver
APT_TEST_DEBS := nginx nginx-common
DEB_CACHE := .cache/debs

.PHONY: install install-test up test lint typecheck importlint unit bench clean help

help:
	@echo "make up      install what is missing, then run an all-in-one cluster (foreground)"
	@echo "make test    install test needs, then run lint, type checks and the whole suite"
	@echo "make bench   run the benchmarks in bench/ and print their figures"
	@echo "make install only install (Debian packages and .venv)"

install: $(VENV)/.installed
	@scripts/apt-install $(APT_PACKAGES)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing pilothouse into $(VENV)"
	@$(PIP) install --quiet --upgrade pip >/dev/null 2>&1 || true
	@$(PIP) install --quiet -e .
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set, every start would
	@# otherwise recompile the package (measured: 0.47 s of imports vs 0.32 s).
	@$(PY) -m compileall -q src >/dev/null
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	@echo "==> installing test dependencies into $(VENV)"
	@$(PIP) install --quiet -e '.[test]'
	@touch $@

install-test: install $(VENV)/.installed-test
	@scripts/apt-install $(APT_TEST_PACKAGES)
	@scripts/apt-download $(DEB_CACHE) $(APT_TEST_DEBS)

up: install
	$(VENV)/bin/pilothouse server --data-dir $(DATA_DIR) $(ARGS)

lint: install-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install-test
	$(VENV)/bin/mypy

importlint: install-test
	$(VENV)/bin/lint-imports

unit: install-test
	$(VENV)/bin/pytest -q -m "not kubectl and not root and not slow"

test: install-test lint typecheck importlint
	$(VENV)/bin/pytest -q -ra $(ARGS)

# Each prints one JSON object with its figures and the baseline it measured in the same
# run (bench/noop_server.py is api.py's baseline, not a benchmark). pod_startup and probes
# run real containers, services and storage set up networks and mounts: as root.
BENCHMARKS := api controllers scheduler pod_startup probes encryption jwt_libs services storage audit overload writepath

bench: install-test
	@for b in $(BENCHMARKS); do echo "==> bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
