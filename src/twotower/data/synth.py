"""Synthetic MS MARCO at any size, made from the real sample, for scale tests (`twotower synth`).

The shared data holds 24k real passages and 12k real queries; the full collection has 8.8M passages, which
these machines cannot download. `synthesize` writes `<out>/msmarco-passage/` in the official formats
(collection.tsv, queries.{train,dev}.tsv, TREC qrels.{train,dev}.tsv, optionally run.dev.bm25top20.tsv) at
any size, recombining the real text:

* a background passage takes the sentence count of a random real passage, each sentence drawn from it or
  (half the time) from any passage, then ~10% of its words replaced by words drawn by corpus frequency, and
  a few of those by new word-like strings, so lengths, the Zipf curve and vocabulary growth look real;
* every query is a real query (train from train, dev from dev; repeats lightly reordered) whose relevant
  passage is its real relevant passage, lightly perturbed but never in the query's words, at a random pid
  (only the real pairs sharing a word that is not a stop-word are used: ~95% of them).

Output is streamed a block of passages at a time (memory is the seed's, whatever the size), deterministic
by seed, and written to a temporary folder renamed into place with `_SUCCESS`, so a killed run never
looks complete and a finished one with the same settings is reused.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twotower.io.atomic import DONE, building
from twotower.io.output import OutputExistsError, check_output, mark_output
from twotower.io.paths import data_dir

BLOCK = 20_000  # passages generated from one seeded RNG: the unit of determinism and of writing
SENTENCE = re.compile(r"(?<=[.!?])\s+")
SUFFIXES = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


def parse_count(text: str | int) -> int:
    """'8.8M' -> 8_800_000, '100k' -> 100_000, '1_000' or 1000 -> 1000 (case-insensitive)."""
    if isinstance(text, int):
        value = text
    else:
        raw = str(text).strip().lower().replace("_", "").replace(",", "")
        scale = SUFFIXES.get(raw[-1:], 1)
        number = raw[:-1] if raw[-1:] in SUFFIXES else raw
        try:
            value = round(float(number) * scale) if scale > 1 or "." in number else int(number)
        except ValueError:
            raise ValueError(f"not a count: {text!r} (use e.g. 8.8M, 100k, 24372)") from None
    if value < 0:
        raise ValueError(f"a count must be >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class SynthConfig:
    passages: int
    queries: int
    dev_queries: int = 500
    seed: int = 0
    substitute: float = 0.1  # share of a background passage's words replaced
    novel: float = 0.05  # share of the replacements that are new word-like strings (vocabulary growth)
    bm25_run: bool = False  # also write run.dev.bm25top20.tsv (indexes the synthetic corpus: slower)


class _Seed:
    """The real sample, cut into the pieces synthetic text is made of."""

    def __init__(self, source: Path) -> None:
        from twotower.data.msmarco import read_collection, read_qrels, read_queries

        collection = read_collection(source / "collection.tsv")
        self.passages = list(collection.values())
        self.sentences: list[list[str]] = [SENTENCE.split(p) for p in self.passages]
        self.all_sentences = [s for sents in self.sentences for s in sents]
        # Every word occurrence once: drawing uniformly from it draws by corpus frequency (Zipf holds).
        self.words = [sys.intern(w) for p in self.passages for w in p.split()]
        self.pairs: dict[str, list[tuple[str, str]]] = {}
        for split in ("train", "dev"):
            queries, qrels = read_queries(source / f"queries.{split}.tsv"), read_qrels(source / f"qrels.{split}.tsv")
            self.pairs[split] = [
                (text, collection[pid])
                for qid, text in queries.items()
                for pid, rel in sorted(qrels.get(qid, {}).items())
                if rel > 0 and pid in collection and _shared(text, collection[pid])
            ]
            if not self.pairs[split]:
                raise ValueError(f"{source}: no {split} query has a relevant passage in collection.tsv")


def _shared(query: str, passage: str) -> bool:
    """Whether the pair shares a word that is not a stop-word: a relevant passage lexical search can find."""
    from twotower.retrieval.text import bm25_stopwords, bm25_words

    stop = bm25_stopwords("en")
    return bool(set(bm25_words(query, stop)) & set(bm25_words(passage)))


def synthesize(
    out: str | Path,
    config: SynthConfig,
    source: str | Path | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write `<out>/msmarco-passage/` for `config` (or reuse a finished one); returns that folder.

    A `msmarco-passage/` that synth did not write (the real data set, say) is refused unless `overwrite`."""
    if Path(out).exists() and not Path(out).is_dir():
        raise OutputExistsError(f"--out {out} is a file, not a folder; give the folder to write msmarco-passage/ into")
    target = check_output(Path(out) / "msmarco-passage", "synth", overwrite=overwrite, recognise=_synthesized)
    n_queries = config.queries + config.dev_queries
    if n_queries > config.passages:
        raise ValueError(
            f"{config.queries:,} train + {config.dev_queries:,} dev queries need as many relevant "
            f"passages, but --passages is {config.passages:,}"
        )
    source = Path(source) if source else data_dir() / "msmarco-passage"
    stamp = {"config": asdict(config), "source": str(source.resolve())}
    if target.exists():
        if _synthesized(target) and json.loads((target / DONE).read_text()) == stamp:
            return target
        shutil.rmtree(target)  # other settings: written again, never mixed
    seed = _Seed(source)
    rng = np.random.default_rng(config.seed)
    # Which real pair each synthetic query repeats, and the pid of its relevant passage.
    picks = {
        split: rng.permutation(np.arange(n) % len(seed.pairs[split]))
        for split, n in (("train", config.queries), ("dev", config.dev_queries))
    }
    slots = rng.choice(config.passages, n_queries, replace=False) if n_queries else np.zeros(0, np.int64)
    with building(target) as tmp:
        queries = _write_queries(tmp, seed, picks, slots, config)
        _write_collection(tmp / "collection.tsv", seed, queries, slots, config, progress)
        if config.bm25_run:
            _write_bm25_run(tmp, progress)
        mark_output(tmp, "synth")
        (tmp / DONE).write_text(json.dumps(stamp, indent=2))
    return target


def _synthesized(folder: Path) -> bool:
    """A folder synth wrote before the output marker existed: its `_SUCCESS` holds synth's stamp."""
    try:
        stamp = json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and set(stamp) == {"config", "source"}


def _write_queries(
    tmp: Path, seed: _Seed, picks: dict[str, np.ndarray], slots: np.ndarray, config: SynthConfig
) -> list[tuple[str, str]]:
    """queries/qrels files; returns (query, relevant passage) per synthetic query, in slot order."""
    made: list[tuple[str, str]] = []
    r = random.Random(config.seed)
    start = 0
    for split, pick in picks.items():
        qlines, rlines = [], []
        seen: dict[int, int] = {}
        for j, p in enumerate(pick.tolist()):
            query, passage = seed.pairs[split][p]
            repeat = seen[p] = seen.get(p, -1) + 1
            if repeat:  # a repeated real query: reorder two words so the text differs, the words do not
                words = query.split()
                if len(words) > 1:
                    a = r.randrange(len(words) - 1)
                    words[a], words[a + 1] = words[a + 1], words[a]
                query = " ".join(words)
            qid = start + j
            qlines.append(f"{qid}\t{query}\n")
            rlines.append(f"{qid}\t0\t{int(slots[qid])}\t1\n")
            made.append((query, passage))
        (tmp / f"queries.{split}.tsv").write_text("".join(qlines), encoding="utf-8")
        (tmp / f"qrels.{split}.tsv").write_text("".join(rlines), encoding="utf-8")
        start += len(pick)
    return made


def _write_collection(
    path: Path, seed: _Seed, queries: list[tuple[str, str]], slots: np.ndarray, config: SynthConfig, progress: bool
) -> None:
    from rich.progress import Progress

    order = np.argsort(slots)
    sorted_slots = slots[order]
    with (
        open(path, "w", encoding="utf-8", buffering=1 << 22) as fh,
        Progress(transient=True, disable=not progress) as bar,
    ):
        task = bar.add_task(f"synthetic collection ({config.passages:,} passages)", total=config.passages)
        for block_start in range(0, config.passages, BLOCK):
            block_stop = min(block_start + BLOCK, config.passages)
            r = random.Random(config.seed * 1_000_003 + block_start)  # per block: same text whatever came before
            lo, hi = np.searchsorted(sorted_slots, [block_start, block_stop])
            owner = dict(zip(sorted_slots[lo:hi].tolist(), order[lo:hi].tolist()))
            lines = []
            for pid in range(block_start, block_stop):
                if pid in owner:
                    text = _relevant(r, seed, *queries[owner[pid]])
                else:
                    text = _background(r, seed, config)
                lines.append(f"{pid}\t{text}\n")
            fh.write("".join(lines))
            bar.advance(task, block_stop - block_start)


def _background(r: random.Random, seed: _Seed, config: SynthConfig) -> str:
    base = seed.sentences[r.randrange(len(seed.sentences))]
    pool = seed.all_sentences
    sentences = [s if r.random() < 0.5 else pool[r.randrange(len(pool))] for s in base]
    words = " ".join(sentences).split()
    words_pool = seed.words
    for _ in range(int(len(words) * config.substitute + r.random())):
        at = r.randrange(len(words))
        word = words_pool[r.randrange(len(words_pool))]
        if r.random() < config.novel:  # a new string made of two real halves: vocabulary grows with size
            other = words_pool[r.randrange(len(words_pool))]
            word = word[: max(1, len(word) // 2)] + other[len(other) // 2 :]
        words[at] = word
    return " ".join(words)


def _relevant(r: random.Random, seed: _Seed, query: str, passage: str) -> str:
    """The real relevant passage with ~5% of its words swapped, never one the query uses."""
    keep = {w.lower() for w in re.findall(r"\w+", query)}
    words = passage.split()
    for _ in range(int(len(words) * 0.05 + r.random())):
        at = r.randrange(len(words))
        if not keep.intersection(w.lower() for w in re.findall(r"\w+", words[at])):
            words[at] = seed.words[r.randrange(len(seed.words))]
    return " ".join(words)


def _write_bm25_run(tmp: Path, progress: bool) -> None:
    """run.dev.bm25top20.tsv (`qid pid rank`), from the project's BM25 over the synthetic corpus."""
    from twotower.data.corpus import Corpus
    from twotower.data.msmarco import read_queries
    from twotower.retrieval.bm25 import BM25Index

    corpus = Corpus.build(tmp / "collection.tsv", out_dir=tmp / ".corpus", progress=progress)
    index = BM25Index.build(corpus, out_dir=tmp / ".bm25", progress=progress)
    queries = read_queries(tmp / "queries.dev.tsv")
    found, _ = index.search(list(queries.values()), 20, n_threads=2)
    with open(tmp / "run.dev.bm25top20.tsv", "w", encoding="utf-8") as fh:
        for qid, pids in zip(queries, found):
            fh.writelines(f"{qid}\t{pid}\t{rank}\n" for rank, pid in enumerate(pids, 1))
    shutil.rmtree(tmp / ".corpus")
    shutil.rmtree(tmp / ".bm25")


# -- `twotower synth` ----------------------------------------------------------------------------------------


def configure(parser) -> None:
    parser.add_argument("--passages", required=True, help="collection size: 1M, 8.8M, 300k or a plain number")
    parser.add_argument("--queries", required=True, help="training queries (each with one relevant passage)")
    parser.add_argument("--dev-queries", default="500", help="dev queries (default 500)")
    parser.add_argument("--out", required=True, help="folder to write; the files go to OUT/msmarco-passage/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", help="the real sample to recombine (default: $TWOTOWER_DATA/msmarco-passage)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT/msmarco-passage even if synth did not write it"
    )
    parser.add_argument("--bm25-run", action="store_true", help="also write run.dev.bm25top20.tsv (indexes the corpus)")


def run(args) -> int:
    import time

    from twotower.io.console import console

    config = SynthConfig(
        passages=parse_count(args.passages),
        queries=parse_count(args.queries),
        dev_queries=parse_count(args.dev_queries),
        seed=args.seed,
        bm25_run=args.bm25_run,
    )
    started = time.perf_counter()
    target = synthesize(args.out, config, args.source, progress=True, overwrite=args.overwrite)
    size = (target / "collection.tsv").stat().st_size
    console().print(
        f"wrote [bold]{target}[/]: {config.passages:,} passages ({size / 2**20:,.0f} MB), "
        f"{config.queries:,} train and {config.dev_queries:,} dev queries in {time.perf_counter() - started:.1f} s"
    )
    return 0
