# Two commands set everything up: `make run` and `make test`. Both create .venv if needed and
# install the pinned dependencies (again only when pyproject.toml changes).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
GPU    ?= 0
LLAMA_CPP_VERSION := 0.3.36
STAMP  := $(VENV)/.installed-gpu$(GPU)
WORKBENCH_HOME ?= $(CURDIR)/demo-workspace
export WORKBENCH_HOME

.PHONY: run test lint bench install demo clean e2e

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch 2.13.0 is the CPU build unless GPU=1. llama-cpp-python is built from source (about
# 9 minutes on 2 cores; pip caches the wheel); GPU=1 rebuilds it with CUDA, bypassing that cache.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install "torch==2.13.0"
ifeq ($(GPU),1)
	CMAKE_ARGS="-DGGML_CUDA=on" FORCE_CMAKE=1 $(BIN)/pip install --no-cache-dir --force-reinstall \
		--no-deps "llama-cpp-python==$(LLAMA_CPP_VERSION)"
endif
	$(BIN)/pip install -e ".[dev]"
	rm -f $(VENV)/.installed-gpu*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench init
	$(BIN)/workbench models fetch
	$(BIN)/workbench ingest docs -c demo
	$(BIN)/workbench ingest README.md -c demo
	test -f "$(WORKBENCH_HOME)/workflows/rag.yaml" || $(BIN)/workbench workflows new rag --from rag
	test -f "$(WORKBENCH_HOME)/evals/demo.jsonl" || cp evals/data/demo.jsonl "$(WORKBENCH_HOME)/evals/demo.jsonl"
	$(BIN)/workbench eval list --json | grep -q run_id || $(BIN)/workbench eval run demo -m smollm2 --max-tokens 48

run: demo
	$(BIN)/workbench

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The real app in tmux, driven by keys on a fresh workspace (tests/e2e.py; about a minute).
e2e: $(STAMP)
	$(BIN)/python tests/e2e.py

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo-workspace bench/results.json
