# Stella Ops — one Makefile for set-up, demo, tests, lint and benchmarks.
# `make demo` and `make test` work on a fresh Debian 12 machine with Python 3.11: they create
# .venv, install the project, and (as root) the Debian packages the tests need.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The venv is rebuilt when the declared dependencies change.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Debian tools the tests drive for real: image layouts, a registry and its htpasswd, zstd, npm
# for the fixture image's node_modules, and systemd's offline analyzers for the unit files.
# Each is TOOL:PACKAGE; only the packages of missing tools are installed, so a machine whose
# node and npm came from elsewhere (whose nodejs conflicts with Debian's npm) keeps them.
SYSTEM_TOOLS := umoci:umoci skopeo:skopeo mmdebstrap:mmdebstrap docker-registry:docker-registry \
  zstd:zstd htpasswd:apache2-utils npm:npm systemd-analyze:systemd systemd-sysusers:systemd \
  systemd-tmpfiles:systemd unshare:util-linux tmux:tmux softhsm2-util:softhsm2 rpm:rpm \
  rpmbuild:rpm dpkg:dpkg go:golang-go strip:binutils govulncheck:govulncheck \
  pg_ctlcluster:postgresql
PYTEST_ARGS ?=
# The suite runs on every core (pytest-xdist); tests sharing a module's fixture stay on one
# worker (tests/conftest.py). PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= auto

.PHONY: all venv sysdeps images images-clean appliance-image node-deps demo test lint units bench clean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	    else echo "make: cannot create $(VENV): install python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }; \
	fi
	$(BIN)/python -m pip install -q --upgrade pip
	@# OPA's engine wheel declares Requires-Python >=3.14 but is py3-none and runs on 3.11:
	@# install it alone first, so the resolver below accepts it without relaxing any other package.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python 'opa-golib-python-bindings==0.4.4'
	$(BIN)/python -m pip install -q -e '.[test,lint,postgres]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# System packages for the tests. As root they are installed; otherwise missing ones are named.
sysdeps:
	@missing=""; pkgs=""; for tp in $(SYSTEM_TOOLS); do t=$${tp%%:*}; p=$${tp#*:}; \
	  command -v $$t >/dev/null 2>&1 && continue; missing="$$missing $$t"; \
	  case " $$pkgs " in *" $$p "*) ;; *) pkgs="$$pkgs $$p";; esac; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$pkgs (for$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	  else echo "make: missing tools:$$missing — run 'sudo apt-get install$$pkgs'"; exit 1; fi; \
	fi

# Fixture images for the scanner's tests and the demo. They need Debian's archive, PyPI and npm
# once; they are cached in .cache/images and rebuilt only when a recipe or the builder changes.
images: venv sysdeps
	$(BIN)/python images/build.py all

# The appliance's own image (docs/release-evidence.md): rebuilt when the project's sources change.
appliance-image: venv sysdeps
	$(BIN)/python images/build.py appliance

images-clean:
	rm -rf .cache/images

demo: venv images
	$(BIN)/python scripts/demo.py

# sigstore-js, the independent verifier of our RVAs in tests/node (pinned by package-lock.json)
node-deps: sysdeps
	mkdir -p .cache/node && cp tests/node/package.json tests/node/package-lock.json .cache/node/
	cd .cache/node && npm ci --no-audit --no-fund

# The suite starts thousands of stella processes: their modules are compiled once up front, so
# no child compiles them again (an environment with PYTHONDONTWRITEBYTECODE set never caches them).
test: venv sysdeps images appliance-image node-deps
	$(BIN)/python -m compileall -q -j 0 appliance bundles mirror tui tests >/dev/null
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy  # strict over every package, bench/ and tests/ ([tool.mypy] files)
	$(BIN)/python scripts/check_layers.py

# systemd units: 'systemd-analyze verify' must be silent; prints each service's exposure
# ('systemd-analyze security --offline=yes'), failing above 2.0.
units: venv sysdeps
	$(BIN)/python -m tests.systemd.analyze

# Every benchmark runs and prints its figures, and records them in bench/results; README.md's
# measured table is then made from those records. The target fails at the end if any missed or
# failed. They drive skopeo, docker-registry and zstd, and scan the fixture images.
bench: venv sysdeps images
	@failed=""; for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
	$(BIN)/python bench/figures.py; \
	if [ -n "$$failed" ]; then echo "benchmarks failed or over target:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
