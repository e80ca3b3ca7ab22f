# The two set-up commands of the README, and the chores around them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install install-test lint proto bench clean e2e-docker

# A strict editable install (a tree of symlinks under build/): `ember.operator` lives in a
# folder without __init__.py (see operator/README.md), which the default editable finder cannot
# map. Edits show through the links; a new module needs a re-install, hence the source list.
SOURCES := $(shell find client runtime operator -name '*.py' -o -name '*.proto' 2>/dev/null)

$(VENV)/.installed: pyproject.toml $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]' --config-settings editable_mode=strict
	touch $@

install: $(VENV)/.installed

## make demo: a local cluster running the seed workloads
demo: install
	$(PY) examples/demo.py

## make test: the test suite (unit, integration on real processes, operator; e2e skips without kind)
test: install
	$(PY) -m pytest -q

## make e2e-docker: the image as a cluster of containers, with a driver here (opt-in, not in
## make test; needs Docker, and debootstrap when no base image can be pulled)
e2e-docker: install
	EMBER_E2E_DOCKER=1 $(PY) -m pytest -v -s -rs --timeout 1800 tests/docker

lint: install
	$(PIP) install -q -e '.[dev]' --config-settings editable_mode=strict
	$(PY) -m ruff check client runtime operator tests bench examples
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

## make proto: regenerate the committed gRPC code from runtime/protocol/*.proto
proto:
	$(PIP) install -q 'grpcio-tools>=1.85.1'
	rm -rf build/proto && mkdir -p build/proto
	$(PY) -m grpc_tools.protoc -Iember/runtime/protocol=runtime/protocol \
		--python_out=build/proto --pyi_out=build/proto --grpc_python_out=build/proto \
		runtime/protocol/*.proto
	cp build/proto/ember/runtime/protocol/*.py build/proto/ember/runtime/protocol/*.pyi runtime/protocol/

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
