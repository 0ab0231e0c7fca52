# The two quick-start commands: `make up` (workbench on the demo data) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export AUDIENCE_DB ?= data/audiences.db
# Where `make up` serves the workbench and the API (the Procfile reads both; the app finds the API by API_PORT).
export APP_PORT ?= 8501
export API_PORT ?= 8000

.PHONY: up test demo bench ports

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# Debian's chromium drives the app's end-to-end test (Playwright never downloads a browser here).
/usr/bin/chromium:
	apt-get update -q && apt-get install -y -q chromium

# Java 17 runs the Spark engine's tests (pyspark 4 starts a JVM).
/usr/bin/java:
	apt-get update -q && apt-get install -y -q openjdk-17-jre-headless

test: $(VENV)/.installed /usr/bin/chromium /usr/bin/java
	$(PY) -m ruff check .
	$(PY) -m pytest -q

$(AUDIENCE_DB): | $(VENV)/.installed
	$(PY) -m pipeline demo --db $(AUDIENCE_DB)

demo: $(VENV)/.installed
	$(PY) -m pipeline demo --db $(AUDIENCE_DB)

# Before the minute the first demo build takes: a busy port is named, with the setting that moves it.
ports: $(VENV)/.installed
	@$(PY) -m pipeline.cli.ports APP_PORT=$(APP_PORT) API_PORT=$(API_PORT)

up: $(VENV)/.installed ports $(AUDIENCE_DB)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/honcho start

bench: $(VENV)/.installed
	$(PY) -m pipeline bench
