"""`twotower export`: static towers become a sentence-transformers StaticEmbedding that gives our vectors."""

from functools import partial

import numpy as np
import pytest
import torch

from twotower.models.build import build_two_tower
from twotower.models.checkpoint import load_encoder, model_fields, save_checkpoint
from twotower.models.export import export_sentence_transformer
from twotower.models.recurrent import GRUTower
from twotower.models.static import MeanTower
from twotower.models.tokenizers import WordPieceTokenizer, WordTokenizer
from twotower.models.tower import ExportError

TEXTS = ["Cooking an egg takes minutes!", "Boil water, then add the egg.", "The river's bank", "a bank loan"]
QUERIES = ["how long to boil an egg?", "bank", "zzqxv unknown words only", "Egg " * 40]
PASSAGES = ["Boil the egg for seven minutes, then cool it in cold water. " * 8, "The bank of the river."]


def checkpoint(path, tower, tokenizer, shared=True):
    torch.manual_seed(0)
    model = build_two_tower(tower, tokenizer, shared=shared, query_max_length=6, doc_max_length=40)
    with torch.no_grad():  # away from the start, so the folded token weights are not all alike
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    config = {
        "tower": {"_target_": f"{tower.func.__module__}.{tower.func.__name__}", **tower.keywords},
        "shared": shared,
        "freeze_embeddings": False,
        "tokenizer": tokenizer.state(),
        "query_max_length": 6,
        "doc_max_length": 40,
    }
    return save_checkpoint(
        path,
        {
            **model_fields(model, config),
            "training_stats": {"best_metrics": {"mrr@10": 0.3}},
            "epoch": 0,
            "eval_results": {},
            "wandb_run_id": None,
        },
    )


@pytest.mark.parametrize(
    "make_tokenizer",
    [
        lambda: WordTokenizer.build(TEXTS * 2, min_freq=1, embedding_dim=16),
        lambda: WordPieceTokenizer.build(TEXTS),
    ],
    ids=["word", "wordpiece"],
)
@pytest.mark.parametrize("shared", [True, False])
def test_static_towers_export_to_identical_vectors(tmp_path, make_tokenizer, shared):
    from sentence_transformers import SentenceTransformer

    ckpt = checkpoint(tmp_path / "best.pt", partial(MeanTower, output_dim=12), make_tokenizer(), shared)
    st = SentenceTransformer(str(export_sentence_transformer(ckpt, tmp_path / "st")), device="cpu")
    ours = load_encoder(ckpt)
    assert np.abs(st.encode_query(QUERIES[:3]) - ours.encode_queries(QUERIES[:3])).max() <= 1e-5
    # Truncation too: a 40-word query keeps its first 6 tokens on the query route only.
    assert np.abs(st.encode_query(QUERIES[3:]) - ours.encode_queries(QUERIES[3:])).max() <= 1e-5
    assert np.abs(st.encode_document(PASSAGES) - ours.encode_documents(PASSAGES)).max() <= 1e-5
    assert "0.3000" in (tmp_path / "st" / "README.md").read_text()


def test_a_recurrent_tower_or_an_mlp_head_is_refused_with_the_reason(tmp_path):
    tok = WordTokenizer.build(TEXTS * 2, min_freq=1, embedding_dim=16)
    with pytest.raises(ExportError, match="GRUTower has no sentence-transformers equivalent"):
        export_sentence_transformer(
            checkpoint(tmp_path / "gru.pt", partial(GRUTower, output_dim=8), tok), tmp_path / "a"
        )
    with pytest.raises(ExportError, match="hidden_size=0"):
        export_sentence_transformer(
            checkpoint(tmp_path / "mlp.pt", partial(MeanTower, hidden_size=8), tok), tmp_path / "b"
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_exported_model_is_a_dense_baseline_that_ranks_like_the_checkpoint(tmp_path):
    """Separate query and document towers stay separate after export: `DenseBaseline` encodes each side with
    its own route, so the exported folder retrieves exactly what the `.pt` does."""
    from twotower.data.msmarco import Split
    from twotower.evaluation.baselines import DenseBaseline
    from twotower.evaluation.retrieval import evaluate_encoder

    ckpt = checkpoint(
        tmp_path / "best.pt", partial(MeanTower, output_dim=12), WordPieceTokenizer.build(TEXTS), shared=False
    )
    folder = export_sentence_transformer(ckpt, tmp_path / "st")
    split = Split(
        {"q1": QUERIES[0], "q2": QUERIES[1]},
        {"q1": {"p0": 1}, "q2": {"p1": 1}},
        {f"p{i}": text for i, text in enumerate(PASSAGES + TEXTS)},
    )

    exported = DenseBaseline(model=str(folder)).evaluate(split, progress=False)
    ours = evaluate_encoder(load_encoder(ckpt), split)
    assert exported.ranking == ours.ranking
    assert exported.metrics == pytest.approx(ours.metrics)
