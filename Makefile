# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

# compileall: bytecode for the project's own modules, as pip writes it for installed packages
# (an editable install writes none); where PYTHONDONTWRITEBYTECODE is set, every command and
# every server process would otherwise compile them again (~0.17 s each on the CI machine).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q domain application infrastructure api
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
