"""Every experiment runs (`trainer.fast_dev_run=true`, on a small real subset) and every config group option
instantiates, as lightning-hydra-template's tests do: a config typo fails CI, not a night's run."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from twotower import api
from twotower.api import compose_config as compose

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_batch(experiment, small_msmarco, tiny_bert, tmp_path):
    cfg = compose([f"experiment={experiment}"])
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true", "logger=csv", "data.batch_size=8"]
    if "TransformerTower" in cfg.model.tower._target_:
        overrides.append(f"model.tower.path={tiny_bert}")  # the real MiniLM is for `make bench`
    if cfg.data.get("teacher"):
        overrides.append(f"data.teacher={tiny_bert}")  # a tiny teacher keeps the teacher's encode to seconds
        if cfg.data.get("teacher_vectors"):
            overrides.append("model.tower.output_dim=32")  # regressing onto its vectors: the tiny teacher's width
    result = api.train(overrides, config={"data": {"dir": str(small_msmarco)}}, run_dir=tmp_path)
    assert result.trainer.state.finished


@pytest.mark.parametrize("group", ["model", "loss", "tokenizer", "optim", "scheduler"])
def test_every_option_of_a_group_instantiates(group, tiny_bert):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose([f"{group}={option}"])
        node = cfg.model.tower if group == "model" else cfg[group]
        if group == "model" and "TransformerTower" in node._target_:
            node.path = str(tiny_bert)
        if group == "tokenizer" and cfg.tokenizer.get("embeddings") == "model2vec":
            continue  # distils MiniLM (20 s): run by the experiments that use it
        built = instantiate(node)
        assert built is not None or option == "none", f"{group}={option}"
