# twotower: `make train` installs what it needs and trains the default experiment; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel; on a CUDA machine use TORCH=torch (or the build matching your driver).
TORCH ?= torch==2.13.0
ARGS ?=
export HF_HUB_OFFLINE ?= 1
export WANDB_SILENT ?= true

.PHONY: install train evaluate test test-slow bench sweep wandb-sweep clean

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

bench: install
	$(BIN)/python bench/bench_train.py $(ARGS)

clean:
	rm -rf outputs/ multirun/ .pytest_cache
