# Quick start: `make demo` (train Light Flow on the built-in synthetic data), `make test` (the test suite, as CI runs it).
SHELL := /bin/bash
VENV := $(shell bash tools/setup_env.sh | tail -n 1)
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: test demo env

env:
	@echo $(VENV)

test:
	$(PY) -m pytest -q tests
