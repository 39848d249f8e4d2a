# One virtualenv for everything; each target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo serve test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/backupctl demo

serve: $(BIN)/.installed
	$(BIN)/backupctl serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Two passes, each failing the build. Most tests wait on processes and databases rather
# than compute, so they run on PYTEST_WORKERS xdist workers; the "serial" ones (benchmarks,
# a PostgreSQL restart) then run alone, as they disturb or measure the whole machine.
PYTEST_WORKERS ?= 4

test: lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not serial"
	$(BIN)/pytest -q -m serial

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
