# The README's two commands: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-reliability install bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

## Azurite + Microsoft 365 simulator (demo tenants) + local Functions host on :7071
run: install
	$(PY) -m devtools.run $(ARGS)

## The test suite without the `slow` scenarios (starts its own Azurite and simulator on free ports)
test: install
	$(PY) -m pytest -m "not slow" $(ARGS)

## Reliability (issue 12): hostile bodies and headers, upstream bounds, deadlines, starvation, faults during
## jobs; the `slow` ones too (the 500-profile fault run); the rest also runs in `make test`
test-reliability: install
	$(PY) -m pytest tests/reliability tests/unit/test_webhooks.py tests/unit/test_triggers.py $(ARGS)

## Benchmarks (print figures; see devtools/bench/)
bench: install
	$(PY) -m devtools.bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache
