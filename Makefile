# The two set-up commands of the README, and the chores around them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install install-test lint proto bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

## make demo: a local cluster running the seed workloads
demo: install
	$(PY) examples/demo.py

## make test: the test suite (unit, integration on real processes, operator; e2e skips without kind)
test: install
	$(PY) -m pytest -q

lint: install
	$(PIP) install -q -e '.[dev]'
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
