# `make demo` and `make test` create .venv on first use; nothing else is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow tour clean

# tools/install.py: uv, given pip's settings, installs the same packages several times faster
# (the test extra is 6 GB with torch's CUDA libraries); pip where uv fails.
$(STAMP): pyproject.toml tools/install.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/install.py -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/googlenet train

# The suite starts many Python processes (the CLI, torchrun, servers): each compiles torch's
# modules again unless bytecode may be cached, so the tests allow it even where
# PYTHONDONTWRITEBYTECODE is set (a test process took 20 s instead of 3 to start).
TEST_ENV := PYTHONDONTWRITEBYTECODE=

# -n auto: a pytest-xdist worker per core, each with its share of the threads (tests/conftest.py)
test: $(STAMP)
	$(BIN)/lint-imports
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "not slow" -n auto --dist worksteal

test-slow: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m slow

# docs/tour.ipynb: docs/tour.md run, with its outputs (the pictures GitHub shows)
tour: $(STAMP)
	$(TEST_ENV) $(BIN)/python tools/tour.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
