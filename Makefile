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

# llama-cpp-python is built from source once per variant into a wheel cache of its own (about 9
# minutes on 2 cores), then installed from there. GPU=1 builds it with CUDA. On a CPU with AMX the
# build keeps the CPU's AVX-512 features but leaves AMX out: llama.cpp's AMX kernels crashed
# every multi-token decode here (SIGSEGV in ggml_backend_amx_mul_mat, on this kind's Xeon in a VM).
HAS_AMX := $(shell grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && echo 1 || echo 0)
ifeq ($(GPU),1)
LLAMA_CMAKE_ARGS := -DGGML_CUDA=on
else ifeq ($(HAS_AMX),1)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON \
	-DGGML_AVX512_BF16=ON
else
LLAMA_CMAKE_ARGS :=
endif
LLAMA_WHEELS ?= $(HOME)/.cache/workbench/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-gpu$(GPU)-amx$(HAS_AMX)

# torch 2.13.0 is the CPU build unless GPU=1.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install "torch==2.13.0"
	test -n "$$(ls $(LLAMA_WHEELS)/*.whl 2>/dev/null)" || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(BIN)/pip wheel --no-cache-dir --no-deps -w $(LLAMA_WHEELS) "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	$(BIN)/pip install --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install -e ".[dev,ray]"
	rm -f $(VENV)/.installed-gpu*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench init
	$(BIN)/workbench models fetch
	$(BIN)/workbench ingest docs README.md -c demo
	test -f "$(WORKBENCH_HOME)/workflows/rag.yaml" || $(BIN)/workbench workflows new rag --from rag
	test -f "$(WORKBENCH_HOME)/evals/demo.jsonl" || cp evals/data/demo.jsonl "$(WORKBENCH_HOME)/evals/demo.jsonl"
	$(BIN)/workbench eval list --json | grep -q run_id || $(BIN)/workbench eval run demo -m smollm2 --max-tokens 48

run: demo
	$(BIN)/workbench

# The end-to-end run types as a person does and waits on the screen: it runs by itself after the
# parallel suite (beside the other worker's model tests on 2 cores, keys sent before a field had
# taken the focus were lost in 3 CI runs of 4).
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not alone"
	$(BIN)/python -m pytest -q -m alone

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The real app in tmux, driven by keys on a fresh workspace (tests/e2e.py; about a minute).
e2e: $(STAMP)
	$(BIN)/python tests/e2e.py

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo-workspace bench/results.json
