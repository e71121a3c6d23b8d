# The same commands for users, CI and benchmarks.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PINLANDING_HOME ?= $(CURDIR)/.pinlanding
export DAGSTER_HOME ?= $(PINLANDING_HOME)/dagster

.PHONY: install run test ui sample-catalog bench-model clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m pinlanding_assets.main_job $(ARGS)

test: install
	$(PY) -m pytest -q --durations=15

ui: install
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp pinlanding_assets/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

sample-catalog: install
	$(PY) -m pinlanding_assets.core.sample_catalog data/sample_catalog

clean:
	rm -rf $(PINLANDING_HOME)
