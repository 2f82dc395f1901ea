# Quick start: `make demo` (train Light Flow on the built-in synthetic data), `make test` (the test suite, as CI runs it).
# Both create (once) a virtualenv outside the clone, keyed by requirements/constraints.txt's hash: tools/setup_env.sh.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
PY = "$$(bash tools/setup_env.sh | tail -n 1)/bin/python"

.PHONY: env test demo

env:
	bash tools/setup_env.sh

test:
	$(PY) -m pytest -q tests
