# coldbridge: `make run` trains on the embedded synthetic data and serves; `make test` runs the
# static checks (`make lint`: ruff, mypy --strict, import contracts) and then the suite.
# Both create (or reuse) the virtualenv in $(VENV) themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.coldbridge-installed
DEMO ?= var/demo
PORT ?= 50051

.PHONY: run test lint venv protos bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,trainer,dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/coldbridge datagen --out $(DEMO)/data --seed 7
	$(VENV)/bin/coldbridge train --data $(DEMO)/data --out $(DEMO)/bundles
	$(VENV)/bin/coldbridge serve --bundle $(DEMO)/bundles --port $(PORT) --demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest

protos: $(STAMP)
	$(PY) protos/run_codegen.py

bench: $(STAMP)
	$(PY) benchmarks/serving.py

clean:
	rm -rf $(VENV) var .pytest_cache
