"""Dense + BM25 fusion (`twotower.retrieval.fusion`) against hand-computed numbers, and the evaluation's hybrid
baseline using the very same functions."""

import pytest

from twotower.retrieval.fusion import check_fusion, fuse, fuse_lists, reciprocal_rank, top

DENSE_IDS, DENSE_SCORES = ["a", "b", "c"], [0.9, 0.8, 0.5]
BM25_IDS, BM25_SCORES = ["b", "d", "a"], [10.0, 5.0, 2.0]


def test_the_weighted_sum_adds_max_normalised_bm25_and_fills_gaps_with_each_lists_floor():
    # weight 0.5 / best BM25 10 = 0.05 a BM25 point; c has no BM25 score (floor 2), d no cosine (floor 0.5).
    fused = fuse_lists(DENSE_IDS, DENSE_SCORES, BM25_IDS, BM25_SCORES, "weighted", 0.5, n=10)

    assert [key for key, _ in fused] == ["b", "a", "d", "c"]
    assert dict(fused) == pytest.approx({"b": 0.8 + 0.5, "a": 0.9 + 0.1, "d": 0.5 + 0.25, "c": 0.5 + 0.1})


def test_reciprocal_rank_fusion_sums_one_over_60_plus_rank():
    fused = dict(fuse_lists(DENSE_IDS, DENSE_SCORES, BM25_IDS, BM25_SCORES, "rrf", 1.0, n=10))

    assert fused == pytest.approx({"a": 1 / 61 + 1 / 63, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62})
    assert [k for k, _ in top(fused, 2)] == ["b", "a"]
    # A weight scales the BM25 list's share: at 0 the dense ranking comes back, scores and all.
    assert reciprocal_rank(DENSE_IDS, BM25_IDS, weight=0.0) == pytest.approx(
        {"a": 1 / 61, "b": 1 / 62, "c": 1 / 63, "d": 0.0}
    )


def test_weight_zero_gives_the_dense_ranking_and_ties_go_to_the_lower_key():
    assert [k for k, _ in fuse_lists(DENSE_IDS, DENSE_SCORES, BM25_IDS, BM25_SCORES, "weighted", 0.0, n=3)] == DENSE_IDS
    assert top({"z": 1.0, "m": 1.0, "a": 0.5}, 3) == [("m", 1.0), ("z", 1.0), ("a", 0.5)]
    assert top({7: 2.0, 3: 2.0}, 1) == [(3, 2.0)]  # rows (ints) too: what search ranks
    assert fuse({}, {}, 0.2) == {}


def test_bad_fusion_settings_are_refused_naming_the_setting():
    with pytest.raises(ValueError, match="fusion must be one of weighted, rrf"):
        fuse_lists(DENSE_IDS, DENSE_SCORES, BM25_IDS, BM25_SCORES, "max", 0.2, n=3)
    with pytest.raises(ValueError, match="weight must be a number >= 0"):
        check_fusion("weighted", -1.0)


def test_the_evaluation_baseline_fuses_with_the_same_function():
    from twotower.evaluation import hybrid

    assert hybrid.fuse is fuse  # one home: evaluation imports it, does not copy it
    dense = ({"q": DENSE_IDS}, {"q": DENSE_SCORES}, {})
    bm25 = ({"q": BM25_IDS}, {"q": BM25_SCORES}, {})
    for method, weight in (("weighted", 0.5), ("rrf", 1.0)):
        ranking, scores = hybrid.fused_rankings(dense, bm25, weight, 3, method)
        expected = fuse_lists(DENSE_IDS, DENSE_SCORES, BM25_IDS, BM25_SCORES, method, weight, n=3)
        assert list(zip(ranking["q"], scores["q"])) == expected
