"""Every experiment runs (`trainer.fast_dev_run=true`, on a small real subset) and every config group option
instantiates, as lightning-hydra-template's tests do: a config typo fails CI, not a night's run."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from twotower import api
from twotower.api import compose_config as compose
from twotower.conf import CONF_DIR as CONF

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_batch(experiment, small_msmarco, tiny_bert, tmp_path):
    cfg = compose([f"experiment={experiment}"])
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true", "logger=csv", "data.batch_size=8"]
    if "TransformerTower" in cfg.model.tower._target_:
        overrides.append(f"model.tower.path={tiny_bert}")  # the real MiniLM is for `make bench`
    if cfg.data.prepare.get("teacher"):
        overrides.append(f"data.prepare.teacher={tiny_bert}")  # a tiny teacher keeps the teacher's encode to seconds
        if cfg.data.get("teacher_vectors"):
            overrides.append("model.tower.output_dim=32")  # regressing onto its vectors: the tiny teacher's width
    result = api.train(overrides, config={"data": {"dir": str(small_msmarco)}}, run_dir=tmp_path)
    assert result.trainer.state.finished


@pytest.mark.parametrize("group", ["model", "loss", "tokenizer", "optim", "scheduler", "negatives"])
def test_every_option_of_a_group_instantiates(group, tiny_bert):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose([f"{group}={option}"])
        # tokenizer and negatives land where they are used (Hydra's package directive in each option's file)
        where = {"model": "model.tower", "tokenizer": "model.tokenizer", "negatives": "data.prepare.negatives"}
        node = OmegaConf.select(cfg, where.get(group, group))
        if group == "model" and "TransformerTower" in node._target_:
            node.path = str(tiny_bert)
        if group == "tokenizer" and cfg.model.tokenizer.get("embeddings") == "model2vec":
            continue  # distils MiniLM (20 s): run by the experiments that use it
        built = instantiate(node)
        assert built is not None or option == "none", f"{group}={option}"
        if group == "negatives":  # what the prepare step gets: the same source, under data.prepare
            assert instantiate(cfg.data).prepare.negatives == built and built.name == option


def test_every_baseline_builds_from_its_config():
    """`python evaluate.py baselines=[bm25,minilm]` composes one node per baseline, each a class of ours."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from twotower.evaluation.baselines import Baseline, baseline_names, build_baselines, load_baseline

    names = sorted(p.stem for p in (CONF / "baselines").glob("*.yaml"))
    assert names == baseline_names() and {"bm25", "minilm", "hybrid"} <= set(names)
    with initialize_config_module("twotower.conf", version_base="1.3"):
        every = hydra_compose("evaluate", overrides=[f"baselines=[{','.join(names)}]"])
        smaller = hydra_compose("evaluate", overrides=["baselines=[minilm]", "baselines.minilm.batch_size=8"])
    built = build_baselines(every.baselines)
    assert list(built) == names and all(isinstance(b, Baseline) for b in built.values())
    assert built == {name: load_baseline(name) for name in names}
    assert build_baselines(smaller.baselines)["minilm"].batch_size == 8


def test_the_configs_ship_inside_the_package_and_build_the_prepare_step():
    """Hydra finds the configs as `pkg://twotower.conf`, the same files a wheel install carries; the data node
    builds the DataModule, its `prepare:` node the settings of the prepare step."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import twotower
    from twotower.data.datamodule import MSMarcoDataModule
    from twotower.data.negatives import BM25Negatives
    from twotower.data.prepare import PrepareConfig

    assert CONF.parent == Path(twotower.__file__).parent and (CONF / "train.yaml").is_file()
    with initialize_config_module("twotower.conf", version_base="1.3"):
        cfg = hydra_compose("train", overrides=["experiment=quick", "data.prepare.num_negatives=2"])
    assert cfg.data.prepare._target_ == "twotower.data.prepare.PrepareConfig"
    datamodule = instantiate(cfg.data)  # reads nothing yet
    assert isinstance(datamodule, MSMarcoDataModule)
    assert datamodule.prepare == PrepareConfig(
        negatives=BM25Negatives(depth=50, skip=3), num_negatives=2, subsample=0.1, seed=cfg.seed
    )
    assert datamodule.batch_size == 64 and "negatives" not in cfg.data  # loader settings stay on the DataModule


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_the_scripts_find_their_configs_from_any_directory(script, tmp_path):
    # `--cfg job` composes and prints the config without running the job.
    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--cfg", "job", "--package", "data"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dir:" in done.stdout
    if script == "train.py":
        assert "_target_: twotower.data.prepare.PrepareConfig" in done.stdout
