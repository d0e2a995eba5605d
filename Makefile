# `make run` and `make test` do all the set-up on a fresh clone.
# `make run` installs what serving needs (the server extra); `make test` adds the test, lint and
# docs tools. Each set has its own stamp, so `make run` then `make test` installs the rest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-run run test docs bench lint typecheck clean

install: $(TEST_STAMP)

install-run: $(RUN_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PIP) -e '.[server]'
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PIP) -e '.[server,otel,hsm,test,dev,docs]'
	touch $(TEST_STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/warden serve

test: $(TEST_STAMP)
	$(PY) -m pytest

docs: $(TEST_STAMP)
	$(PY) docs/gen.py
	$(PY) -m mkdocs build --strict

bench: $(TEST_STAMP)
	$(PY) bench/run.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
