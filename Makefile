# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
EXTRAS ?= all
STAMP   = $(VENV)/.installed-$(EXTRAS)

.PHONY: setup demo test test-fast bench sample dist clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(BIN)/crawl2model demo --output runs/demo --overwrite

test: setup
	CRAWL2MODEL_SPARK_UI=0 $(BIN)/python -m pytest -q

test-fast: setup
	CRAWL2MODEL_SPARK_UI=0 $(BIN)/python -m pytest -q -m "not spark and not slow"

# The wheel and the packed environment a cluster's executors run (scripts/pack_env.py).
dist: setup
	$(BIN)/python scripts/pack_env.py

sample: setup
	$(BIN)/python scripts/build_sample.py

clean:
	rm -rf runs/ .pytest_cache spark-warehouse
