# Both targets create (or reuse) .venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := lanas pipeline tests benchmarks docs/examples

.PHONY: demo test test-fast install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## the whole pipeline on the embedded Animal-MNIST (configs/demo.yaml)
	$(BIN)/lanas reproduce --config configs/demo.yaml

test: $(STAMP)  ## lint (ruff, configured in pyproject.toml), then the test suite, slow end-to-end tests included
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m pytest -q --durations=12 $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the inner loop: lint, then every test that starts no Ray and is not slow
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m pytest -q -m "not slow and not ray" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
