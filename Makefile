# Shortcuts. `make demo` and `make test` are the README's two commands: each creates
# .venv and installs what it needs, so they work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test browser delta-reference spark35 wheelhouse test-fast lint lock dbt-compile bench bench-gold clean

# dbt on the databricks target without a workspace: placeholder credentials, and only
# commands that never connect (parse; compile without introspection or cache).
DBX_ENV   := DATABRICKS_HOST=dbc-00000000-0000.cloud.databricks.com \
             DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/0000000000000000 \
             DATABRICKS_TOKEN=offline-placeholder
# Test files run on two workers (one file stays on one worker, so its module fixtures are
# built once); `make test PYTEST_PARALLEL=` runs them in one process.
PYTEST_PARALLEL ?= -n 2 --dist loadfile
DBT_FLAGS := --project-dir dbt --profiles-dir dbt --no-send-anonymous-usage-stats --no-version-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3

# pyproject.toml declares compatible ranges; requirements.lock holds the exact versions.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet -e '.[all]' -c requirements.lock
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet -e '.[test]' -c requirements.lock
	touch $@

# A fresh resolution of the ranges into a new lock (then run `make test` on it).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip==26.3
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '1,2p' requirements.lock; .lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

# Packages the clean-venv wheel test (tests/test_wheel.py) installs offline: AAG's base
# dependencies at the locked versions, an older runtime's numpy/pandas/pyarrow, and the
# build backend to build the wheel from this checkout.
WHEELHOUSE := $(VENV)/wheelhouse
wheelhouse: $(WHEELHOUSE)/.done
$(WHEELHOUSE)/.done: pyproject.toml requirements.lock tests/wheel/runtime.txt $(BIN)/python
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip download --quiet -d $(WHEELHOUSE) -c requirements.lock .
	$(BIN)/python -m pip download --quiet --only-binary=:all: -d $(WHEELHOUSE) -r tests/wheel/runtime.txt
	$(BIN)/python -m pip download --quiet -d $(WHEELHOUSE) "$$(sed -n 's/^requires = \["\(hatchling[^"]*\)"\]/\1/p' pyproject.toml)"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/aag demo

# The explorer's browser tests drive Debian's chromium through its chromedriver; nothing
# downloads a browser at test time.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
		echo "installing chromium and chromium-driver (Debian packages)"; \
		(apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)); }

# Delta Lake's Spark jar and what it needs beyond Spark (the pom $(2): Delta Lake 4.4.0 by
# default), resolved from Maven Central into the local repository now, never at test time;
# the file $(1) lists the jars' paths. `mvn` writes it as its last step, so an interrupted
# run leaves no file behind.
define delta_classpath
	@command -v mvn >/dev/null || { echo "make test needs Maven (mvn) to fetch Delta Lake's jars"; exit 1; }
	mvn -q -B -f $(or $(2),tests/delta_reference/pom.xml) dependency:build-classpath \
		-Dmdep.outputFile=$(abspath $(1))
endef

# The main venv's local Spark sessions load those jars (tests/conftest.py points
# AAG_SPARK_DELTA_CLASSPATH at this file): graph tables there are real Delta tables.
$(VENV)/delta-classpath.txt: tests/delta_reference/pom.xml $(BIN)/python
	$(call delta_classpath,$@)

# The Delta reference environment (tests/test_delta_reference.py): the PySpark that Delta
# Lake 4.4.0's Spark jar is built for, in its own venv, with the same jars.
DELTA_VENV ?= .venv-delta
$(DELTA_VENV)/.installed: tests/delta_reference/requirements.lock tests/delta_reference/pom.xml
	$(PYTHON) -m venv $(DELTA_VENV)
	$(DELTA_VENV)/bin/python -m pip install --quiet --no-deps -r tests/delta_reference/requirements.lock
	$(call delta_classpath,$(DELTA_VENV)/delta-classpath.txt)
	touch $@

delta-reference: $(DELTA_VENV)/.installed

# The PySpark 3.5 environment (tests/test_spark35.py): the Spark client of Databricks
# runtimes 13.3-15.4 and serverless environments 1-3, in its own venv, with Delta Lake
# 3.3's jars for Spark 3.5. The commit/parity test runs there with AAG's source on its path.
SPARK35_VENV ?= .venv-spark35
$(SPARK35_VENV)/.installed: tests/spark35/requirements.lock tests/spark35/pom.xml
	$(PYTHON) -m venv $(SPARK35_VENV)
	$(SPARK35_VENV)/bin/python -m pip install --quiet --no-deps -r tests/spark35/requirements.lock
	$(call delta_classpath,$(SPARK35_VENV)/delta-classpath.txt,tests/spark35/pom.xml)
	touch $@

spark35: $(SPARK35_VENV)/.installed

test: $(VENV)/.installed-test $(VENV)/delta-classpath.txt browser delta-reference spark35 wheelhouse
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/sqlfluff lint dbt databricks
	$(BIN)/lint-imports
	$(BIN)/deptry src tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --durations=30

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not spark"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/sqlfluff lint dbt databricks
	$(BIN)/lint-imports
	$(BIN)/deptry src tests benchmarks

dbt-compile: $(VENV)/.installed-test
	$(DBX_ENV) $(BIN)/dbt parse --target databricks $(DBT_FLAGS) --target-path target/databricks
	$(DBX_ENV) $(BIN)/dbt compile --target databricks $(DBT_FLAGS) --target-path target/databricks \
		--no-introspect --no-populate-cache
	$(BIN)/dbt compile --target local $(DBT_FLAGS) --target-path target/local --no-introspect --no-populate-cache

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_ingest.py --sizes 100000 1000000

bench-gold: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_gold.py --customers 100000 1000000

clean:
	rm -rf $(VENV) $(DELTA_VENV) $(SPARK35_VENV) .pytest_cache .mypy_cache .ruff_cache
