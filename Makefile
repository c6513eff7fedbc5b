# The two commands of the README: `make demo` and `make test`. Both work on a fresh machine.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup provision demo demo-down test lint

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# Builds etcd, kube-apiserver, kubectl, helm, kustomize once (minutes), then reuses the cache.
provision: setup
	$(BIN)/reconciler dev provision

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: provision
	@$(BIN)/pytest tests -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/mypy --strict reconciler
	$(BIN)/lint-imports

demo: provision
	$(BIN)/reconciler dev up
	@echo "run: export KUBECONFIG=$$($(BIN)/reconciler dev kubeconfig)"

demo-down: setup
	$(BIN)/reconciler dev down
