# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: $(VENV)/.installed
	$(BIN)/keyledger serve

# One test process per CPU (at most 4), a test file's tests in one process: its module-scoped
# servers start once. On the 2-core CI machine this takes the suite from ~17 to ~11 minutes.
test: $(VENV)/.installed
	$(BIN)/pytest -q -n auto --maxprocesses=4 --dist loadfile

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/http_bench.py

.PHONY: install serve test bench
