# twotower: `make train` installs what it needs and trains the default experiment; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# GPU=1: faiss-gpu and the default (CUDA) torch build; otherwise faiss-cpu and the CPU wheel of torch.
# faiss-cpu and faiss-gpu install the same `faiss` module, so exactly one of the two extras is installed.
GPU ?=
ifeq ($(GPU),1)
TORCH ?= torch
FAISS := gpu
NOT_FAISS := faiss-cpu
else
TORCH ?= torch==2.13.0
FAISS := cpu
NOT_FAISS := faiss-gpu
endif
ARGS ?=
export HF_HUB_OFFLINE ?= 1
export WANDB_SILENT ?= true

# `make help` lists every target with its `##` comment.
.DEFAULT_GOAL := help

.PHONY: help install browser train evaluate test test-slow test-unit lint format bench bench-gpu bench-scale bench-serve search serve sweep sweep-dashboard wandb-sweep clean redis redis-stop bench-redis

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:[^#]*## /\t/' | expand -t 18

install: $(VENV)/.installed-$(FAISS)  ## make install (CPU) or make install GPU=1

$(VENV)/.installed-$(FAISS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip uninstall -q -y $(NOT_FAISS) 2>/dev/null || true
	$(BIN)/pip install -q -e ".[$(FAISS),dev,sweep,serve,redis]"
	rm -f $(VENV)/.installed-*
	touch $@

train: install  ## train the default experiment on $TWOTOWER_DATA (default ../shared/data); ARGS="model=gru ..."
	$(BIN)/python train.py $(ARGS)

evaluate: install  ## make evaluate CKPT=outputs/runs/<run>/checkpoints/best.pt
	$(BIN)/python evaluate.py ckpt=$(CKPT) $(ARGS)

# The search page's browser test drives the system's headless Chromium through its chromedriver (Selenium is
# pointed at both, so nothing is downloaded at test time). Needs root (or sudo) for apt-get.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:  ## apt-install chromium + chromium-driver (nothing to do when /usr/bin/chromium and /usr/bin/chromedriver exist)
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || $(SUDO) apt-get install -y chromium chromium-driver || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; } || \
		echo "could not apt-install chromium and chromium-driver: the search page's browser test will be skipped"

test: install browser lint  ## lint first (as CI does), then the default suite
	$(BIN)/python -m pytest -q

test-slow: install  ## the tests marked slow (full-size data, long trainings); run before a release
	$(BIN)/python -m pytest -q -m slow

test-unit: install  ## tests/unit only (no subprocess runs of train.py or the CLI; under 2 minutes)
	$(BIN)/python -m pytest -q tests/unit

LINTED := src tests bench tools *.py
lint: install  ## ruff check + ruff format --check + the import graph (layers, no circles, <= 300 lines a module)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python tools/import_graph.py

format: install  ## rewrite the code in the house format (ruff format) and fix what ruff can
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

bench: install  ## every target of every issue, as tables (training run included: ~20 minutes in all)
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_search.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/bench_emb_opt.py
	$(BIN)/python bench/bench_deep_memory.py
	$(BIN)/python bench/bench_headroom.py

bench-gpu: install  ## on a GPU machine: GRU training throughput with bf16, data-wait share, faiss-GPU evaluation
	$(BIN)/python bench/bench_gpu.py $(ARGS)

bench-scale: install  ## synthetic MS MARCO at 100k/300k/1M: corpus build, BM25 index and mining, 1M evaluation (~10 min); ARGS="--sizes 100k --quick"
	$(BIN)/python bench/bench_scale.py $(ARGS)
	$(BIN)/python bench/bench_fingerprint.py --passages 1000000 --repeat 2   # whole-file fingerprints and checksums at 1M

redis: install  ## a local Redis 8 server for `--backend redis` (127.0.0.1, data in outputs/redis); PORT=6379
	$(BIN)/twotower redis start --dir outputs/redis --port $(or $(PORT),6379)

redis-stop: install
	$(BIN)/twotower redis stop --dir outputs/redis

bench-redis: install  ## redis backend beside faiss and Milvus Lite; ARGS="--size 1000000" for the 1M run
	$(BIN)/python bench/bench_redis.py $(ARGS)

search: install  ## make search INDEX=outputs/index/msmarco (interactive)
	$(BIN)/twotower search --index $(INDEX) --interactive

HOST ?= 127.0.0.1
PORT ?= 8000
serve: install  ## make serve INDEX=outputs/index/msmarco [HOST=0.0.0.0 (needs TWOTOWER_API_KEY set)] [PORT=8000]
	$(BIN)/twotower serve --index $(INDEX) --host $(HOST) --port $(PORT) $(ARGS)

bench-serve: install  ## HTTP serving: 8 clients x 500 requests against `twotower serve`, and in-process for comparison
	$(BIN)/python bench/bench_serve.py $(ARGS)

SWEEP ?= optuna
sweep: install  ## Optuna TPE sweep from src/twotower/conf/hparams_search/$(SWEEP).yaml (SWEEP=quick for a CPU-sized one); SWEEP_DIR=<a sweep folder> resumes or extends its study
	$(BIN)/python train.py -m hparams_search=$(SWEEP) $(if $(SWEEP_DIR),hydra.sweep.dir=$(SWEEP_DIR)) $(ARGS)
	$(BIN)/python -m twotower.reporting.sweep $(SWEEP_DIR)

sweep-dashboard: install  ## make sweep-dashboard SWEEP_DIR=outputs/multirun/<sweep>: optuna-dashboard on its optuna.db
	@test -f "$(SWEEP_DIR)/optuna.db" || { echo "no optuna.db in SWEEP_DIR='$(SWEEP_DIR)': make sweep-dashboard SWEEP_DIR=outputs/multirun/<sweep>"; exit 2; }
	$(BIN)/optuna-dashboard sqlite:///$(abspath $(SWEEP_DIR))/optuna.db

wandb-sweep: install  ## W&B sweep from sweeps/$(SWEEP).yaml (needs `wandb login`); SWEEP=gru|mean|losses
	mkdir -p outputs && $(BIN)/wandb sweep sweeps/$(SWEEP).yaml 2>&1 | tee outputs/wandb-sweep.log
	$(BIN)/wandb agent $$(grep -o 'wandb agent .*' outputs/wandb-sweep.log | awk '{print $$3}')

clean:  ## remove outputs/ and caches
	rm -rf outputs/ multirun/ .pytest_cache
