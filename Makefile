# The two commands of a fresh machine: `make demo` (main job) and `make test` (the tests).
# Both create or reuse the virtual environment in .venv and install what is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat pyproject.toml requirements-test.txt training/pyproject.toml 2>/dev/null | sha1sum | cut -c1-10)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
OUT ?= out/demo

.PHONY: venv demo test lint unit clean

venv: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch: the CPU build of 2.13.0 where one is available, else the registry's torch
	$(BIN)/python -m pip install -q "torch==2.13.0" || $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q -e . -r requirements-test.txt
	@if [ -f training/pyproject.toml ]; then $(BIN)/python -m pip install -q --no-deps -e training; fi
	rm -f $(VENV)/.installed-*
	touch $@

demo: venv
	$(BIN)/python -m SpineSegLib.demo --out $(OUT)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test: lint unit

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
