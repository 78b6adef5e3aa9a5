"""Score: each item scored at most once, calls counted, bad outputs caught, failures contained."""

import numpy as np
import pytest

from twotower.emb_opt import Items, Score


def items(ids):
    ids = np.asarray(ids)
    return Items(
        ids=ids,
        vectors=np.stack([np.full(3, float(i)) for i in ids]),
        fields={"name": np.array([f"n{i}" for i in ids])},
    )


def test_batched_score_is_called_once_per_item_even_across_calls_and_duplicates():
    seen = []

    def total(batch):
        seen.extend(batch.ids.tolist())
        return batch.vectors.sum(axis=1)

    score = Score(total)
    np.testing.assert_array_equal(score(items([1, 2, 2, 3])), [3.0, 6.0, 6.0, 9.0])
    np.testing.assert_array_equal(score(items([3, 4, 1])), [9.0, 12.0, 3.0])

    assert sorted(seen) == [1, 2, 3, 4]
    assert score.calls == 4 and score.batches == 2


def test_per_item_score_receives_one_item_with_its_fields():
    score = Score(lambda item: len(item.fields["name"]) + item.vector[0], batched=False)
    np.testing.assert_array_equal(score(items([5, 12])), [7.0, 15.0])
    assert score.calls == 2 and score.batches == 2


def test_batch_size_splits_the_calls():
    sizes = []
    score = Score(lambda b: sizes.append(len(b)) or np.zeros(len(b)), batch_size=2)
    score(items([1, 2, 3, 4, 5]))
    assert sizes == [2, 2, 1]


def test_wrong_length_is_an_error_naming_the_shapes():
    with pytest.raises(ValueError, match=r"shape \(2,\) for 3 items"):
        Score(lambda b: np.zeros(2))(items([1, 2, 3]))


def test_a_per_item_function_used_as_batched_gets_a_hint():
    with pytest.raises(ValueError, match="batched=False"):
        Score(lambda b: 1.0)(items([1, 2]))


def test_nan_is_cached_as_no_score():
    calls = []
    score = Score(lambda b: calls.append(1) or np.where(b.ids == 2, np.nan, 1.0))
    assert np.isnan(score(items([1, 2]))[1])
    score(items([2]))
    assert len(calls) == 1


def test_a_raising_item_becomes_nan_with_errors_nan():
    def fragile(item):
        if item.id == 3:
            raise RuntimeError("assay failed")
        return float(item.id)

    score = Score(fragile, batched=False, errors="nan")
    out = score(items([1, 3, 4]))
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == 4.0
    assert score.failed == 1 and "assay failed" in str(score.last_error)


def test_with_errors_raise_items_scored_before_the_failure_stay_cached():
    def fragile(item):
        if item.id == 3:
            raise RuntimeError("assay failed")
        return float(item.id)

    score = Score(fragile, batched=False)
    with pytest.raises(RuntimeError, match="assay failed"):
        score(items([1, 2, 3, 4]))
    assert score.cache == {1: 1.0, 2: 2.0}


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match="callable"):
        Score(42)
    with pytest.raises(ValueError, match="errors"):
        Score(len, errors="ignore")
