# `make demo` and `make test` create .venv on first use; nothing else is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow clean

# --no-compile: Python compiles a module when it is first imported; compiling every file of
# torch and the other dependencies at install time, most of them never imported, takes longer.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/googlenet train

# The suite starts many Python processes (the CLI, torchrun, servers): each compiles torch's
# modules again unless bytecode may be cached, so the tests allow it even where
# PYTHONDONTWRITEBYTECODE is set (a test process took 20 s instead of 3 to start).
TEST_ENV := PYTHONDONTWRITEBYTECODE=

test: $(STAMP)
	$(BIN)/lint-imports
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
