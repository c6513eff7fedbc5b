# The two commands of the README: `make demo` and `make test`. Both work on a fresh machine.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
IMAGE ?= localhost/reconciler:dev

.PHONY: setup provision browser demo demo-down test lint image image-tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# Builds etcd, the Kubernetes control plane, kubectl, kwok, helm, kustomize and an OCI registry
# once (minutes), then reuses the cache.
provision: setup
	$(BIN)/reconciler dev provision

# Debian's chromium and chromedriver for the fleet page's browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -q && $$sudo apt-get install -y -q chromium chromium-driver; }

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: provision browser
	@$(BIN)/pytest tests -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/mypy --strict reconciler
	$(BIN)/lint-imports

# Local clusters, then the daemon on a Git copy of sample-repo/ (made once in DEMO_DIR and kept
# between runs: commit there and watch the daemon apply it). DEMO_DIR holds the demo's clusters
# (devenv/), repo (repo/) and state (state/); DEMO_PORT is the daemon's page and /metrics port,
# checked before anything starts. Two demos with two DEMO_DIRs and DEMO_PORTs run side by side.
# ^C stops the daemon; `make demo-down` (same DEMO_DIR) the clusters.
DEMO_PORT ?= 9465
DEMO_DIR ?= $(or $(RECONCILER_DEMO_DIR),$(HOME)/.local/state/reconciler-demo)

demo: setup
	$(BIN)/reconciler dev demo --port $(DEMO_PORT) --dir "$(DEMO_DIR)" --sample sample-repo

demo-down: setup
	$(BIN)/reconciler dev down --dir "$(DEMO_DIR)/devenv"

# The container image (Dockerfile) built with buildah from Debian bases made here with debootstrap
# (cached in the container storage; no registry needed), then smoke-tested against local clusters:
# --version, validate sample-repo, run --once (tests/e2e/test_image.py). Prints size and time.
image: provision image-tools
	image/build.sh $(IMAGE)
	RECONCILER_IMAGE=$(IMAGE) $(BIN)/pytest tests/e2e/test_image.py -q -p no:cacheprovider

image-tools:
	image/install-tools.sh
