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

# Local clusters, then the daemon on a Git copy of sample-repo/ (a plain directory here), made
# once in $RECONCILER_DEMO_DIR (default ~/.local/state/reconciler-demo) and kept between runs:
# commit there and watch the daemon apply it. ^C stops the daemon; `make demo-down` the clusters.
demo: provision
	$(BIN)/reconciler dev up
	@set -e; \
	demo="$${RECONCILER_DEMO_DIR:-$$HOME/.local/state/reconciler-demo}"; \
	if [ ! -d "$$demo/repo/.git" ]; then \
		rm -rf "$$demo/repo"; mkdir -p "$$demo"; cp -R sample-repo "$$demo/repo"; \
		git -C "$$demo/repo" init -q -b main; git -C "$$demo/repo" add -A; \
		git -C "$$demo/repo" -c user.name=demo -c user.email=demo@example.invalid \
			commit -q -m "sample-repo"; \
	fi; \
	kubeconfig="$$($(BIN)/reconciler dev kubeconfig)"; \
	echo; \
	echo "Config repo: $$demo/repo  (commit there; the daemon applies each commit: hello-world stage by stage)"; \
	echo "In another shell:"; \
	echo "  export KUBECONFIG=$$kubeconfig"; \
	echo "  $(BIN)/reconciler status --state-dir $$demo/state"; \
	echo "  $(BIN)/reconciler drift --state-dir $$demo/state      (--health: health changes)"; \
	echo "  $(BIN)/reconciler wait --app hello-world --state-dir $$demo/state"; \
	echo "A staged rollout: change the hello-world image in $$demo/repo and commit; then"; \
	echo "  $(BIN)/reconciler rollout status --state-dir $$demo/state"; \
	echo "  $(BIN)/reconciler rollout approve hello-world --state-dir $$demo/state"; \
	echo "  curl -s 127.0.0.1:9465/metrics | grep ^reconciler_"; \
	echo; \
	exec $(BIN)/reconciler run --repo "$$demo/repo" --state-dir "$$demo/state" \
		--kubeconfig "$$kubeconfig" --interval 10s --drift-interval 15s

demo-down: setup
	$(BIN)/reconciler dev down

# The container image (Dockerfile) built with buildah from Debian bases made here with debootstrap
# (cached in the container storage; no registry needed), then smoke-tested against local clusters:
# --version, validate sample-repo, run --once (tests/e2e/test_image.py). Prints size and time.
image: provision image-tools
	image/build.sh $(IMAGE)
	RECONCILER_IMAGE=$(IMAGE) $(BIN)/pytest tests/e2e/test_image.py -q -p no:cacheprovider

image-tools:
	image/install-tools.sh
