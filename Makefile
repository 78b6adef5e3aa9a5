# twotower: `make train` installs what it needs and trains the default experiment; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel; on a CUDA machine use TORCH=torch (or the build matching your driver).
TORCH ?= torch==2.13.0
ARGS ?=
export HF_HUB_OFFLINE ?= 1
export WANDB_SILENT ?= true

.PHONY: install train evaluate test test-slow bench bench-gpu search sweep wandb-sweep clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,sweep]"
	touch $@

train: install  ## train the default experiment on $TWOTOWER_DATA (default ../shared/data); ARGS="model=gru ..."
	$(BIN)/python train.py $(ARGS)

evaluate: install  ## make evaluate CKPT=outputs/runs/<run>/checkpoints/best.pt
	$(BIN)/python evaluate.py ckpt=$(CKPT) $(ARGS)

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install  ## every target of every issue, as tables (training run included: ~20 minutes in all)
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_search.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/bench_emb_opt.py
	$(BIN)/python bench/bench_deep_memory.py

bench-gpu: install  ## on a GPU machine: GRU training throughput with bf16, data-wait share, faiss-GPU evaluation
	$(BIN)/python bench/bench_gpu.py $(ARGS)

search: install  ## make search INDEX=outputs/index/msmarco (interactive)
	$(BIN)/twotower search --index $(INDEX) --interactive

SWEEP ?= optuna
sweep: install  ## Optuna TPE sweep from conf/hparams_search/$(SWEEP).yaml (SWEEP=quick for a CPU-sized one)
	$(BIN)/python train.py -m hparams_search=$(SWEEP) $(ARGS)
	$(BIN)/python -m twotower.sweep

wandb-sweep: install  ## W&B sweep from sweeps/$(SWEEP).yaml (needs `wandb login`); SWEEP=gru|mean|losses
	mkdir -p outputs && $(BIN)/wandb sweep sweeps/$(SWEEP).yaml 2>&1 | tee outputs/wandb-sweep.log
	$(BIN)/wandb agent $$(grep -o 'wandb agent .*' outputs/wandb-sweep.log | awk '{print $$3}')

clean:
	rm -rf outputs/ multirun/ .pytest_cache
