"""SearchLog: compiled results and trajectories, save/load round trip, plots."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from twotower.emb_opt import NumpyVectorDB, RLUpdate, Runner, SearchLog, TopKDiscrete
from twotower.emb_opt.plots import plot_best_so_far, plot_trajectories


@pytest.fixture(scope="module")
def log():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 6)).astype(np.float32)
    ids = np.array([f"item-{i:03d}" for i in range(400)])
    fields = pd.DataFrame({"colour": rng.choice(["red", "blue"], size=400), "mass": rng.random(400)})
    db = NumpyVectorDB(vectors, ids=ids, fields=fields)
    score = lambda items: items.vectors[:, 0] + items.fields["mass"]  # noqa: E731
    return Runner(db, score, TopKDiscrete(k=2, max_queries=6), k=8).search(vectors[:3], iterations=5)


def test_compile_results_lists_each_item_once_best_first_with_fields(log):
    results = log.compile_results()
    assert results["item_id"].is_unique and results["score"].is_monotonic_decreasing
    assert set(results.columns) >= {"item_id", "score", "iteration", "query_id", "distance", "hits", "colour", "mass"}
    retrieved = log.results[log.results["valid"]]
    assert set(results["item_id"]) == set(retrieved["item_id"])
    hits = retrieved.groupby("item_id").size()
    assert (results.set_index("item_id")["hits"] == hits.loc[results["item_id"]].to_numpy()).all()
    assert "vector" not in results and log.compile_results(vectors=True)["vector"].iloc[0].shape == (6,)
    assert isinstance(log.compile_results(format="arrow"), pa.Table)


def test_discrete_trajectories_trace_each_leaf_back_to_its_start(log):
    trajectories = log.compile_trajectories()
    queries = log.queries.set_index("query_id")
    assert len(trajectories) > 3  # branching: more leaves than starts
    for t in trajectories:
        assert queries.loc[t.query_ids[0], "parent_id"] == -1
        assert (np.diff(t.iterations) == 1).all()
        parents = queries.loc[t.query_ids[1:], "parent_id"].to_numpy()
        assert (parents == t.query_ids[:-1]).all()


def test_save_and_load_give_back_the_same_log(log, tmp_path):
    log.save(tmp_path / "run")
    back = SearchLog.load(tmp_path / "run")

    assert back.iterations == log.iterations and back.stop_reason == log.stop_reason
    pd.testing.assert_frame_equal(
        back.compile_results(vectors=True).drop(columns="vector"),
        log.compile_results(vectors=True).drop(columns="vector"),
        check_dtype=False,
    )
    np.testing.assert_allclose(np.stack(back.queries["vector"]), np.stack(log.queries["vector"]))
    assert [len(t.query_ids) for t in back.compile_trajectories()] == [
        len(t.query_ids) for t in log.compile_trajectories()
    ]
    pd.testing.assert_frame_equal(back.steps, log.steps, check_dtype=False)


def test_loading_a_folder_that_is_not_a_log_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved SearchLog"):
        SearchLog.load(tmp_path)


def test_best_so_far_never_decreases(log):
    curve = log.best_so_far()
    assert curve["best_score"].is_monotonic_increasing and curve["calls"].is_monotonic_increasing
    assert curve["best_score"].iloc[-1] == log.compile_results()["score"].iloc[0]


def test_plots_are_written_as_png(log, tmp_path):
    for plot in (plot_trajectories, plot_best_so_far):
        path = plot(log, tmp_path / f"{plot.__name__}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no iterations"):
        plot_best_so_far(SearchLog(dim=6), tmp_path / "empty.png")


def test_rl_log_round_trips_integer_ids(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    log = Runner(NumpyVectorDB(vectors), lambda items: -np.abs(items.vectors).sum(1), RLUpdate(), k=5).search(
        vectors[:2], 3
    )
    back = SearchLog.load(log.save(tmp_path / "rl"))
    assert back.compile_results()["item_id"].tolist() == log.compile_results()["item_id"].tolist()
