# relayd — the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv test lint demo bench-codec clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint,bench]'
	touch $(STAMP)

venv: $(STAMP)

# -bb makes bytes/str comparisons errors: a binary protocol must never mix them.
test: $(STAMP)
	$(PY) -bb -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The README's first command: a 100k burst through relayd and the simulators,
# with a progress bar, a report, and the JSON + PNG in bench-results/.
demo: $(STAMP)
	$(VENV)/bin/relay-bench demo

bench-codec: $(STAMP)
	$(PY) -m bench.codec

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
