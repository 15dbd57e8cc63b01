# Two commands matter: `make demo` and `make test`. Both create the venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench robustness score clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/homesec demo --dir demo-data

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/detector.py

robustness: $(STAMP)
	$(BIN)/python benchmarks/detector_robustness.py

score: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH ../shared/tools/score_clips.py -v --detector 'homesec analyze {video} --fps {fps} --json'

clean:
	rm -rf $(VENV) demo-data build *.egg-info
