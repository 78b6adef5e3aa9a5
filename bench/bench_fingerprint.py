"""What a whole-file input fingerprint costs, next to the head+tail one it replaces (issue 18, section 4).

    python bench/bench_fingerprint.py                    # 200k synthetic passages, extrapolated to 1M
    python bench/bench_fingerprint.py --passages 1000000 # measured at 1M (a ~350 MB file in a temp folder)

Passages are synthetic, of MS MARCO's average length (~340 bytes a line). Times are the best of `--repeat`
runs with the file in the page cache (a training reads it from there too). Rows:

* `head+tail (before)`  : SHA-256 of the first and last MiB: what the fingerprint was
* `whole file, own pass`: `file_fingerprint` of a file not read in this process (a corpus cache hit)
* `read_collection`     : the MS MARCO reader, without and with hashing while it reads; after the second,
                          `file_fingerprint` costs nothing (the row `fingerprint after the read`)
* `corpus checksums`    : hashing the built corpus folder (text, ids, row map), and opening it the first time
                          in a process (verified) and again (not hashed again)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = np.array("the of a to and in is for that on with as by it was are from at be this an which".split())


def make_collection(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for start in range(0, n, 10_000):
            rows = min(10_000, n - start)
            lines = (
                f"{start + i}\t{' '.join(WORDS[rng.integers(len(WORDS), size=int(k))])}\n"
                for i, k in enumerate(rng.integers(80, 120, size=rows))
            )
            fh.writelines(lines)


def head_tail(path: Path) -> str:
    digest, size = hashlib.sha256(), path.stat().st_size
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import twotower.io.fingerprint as fp
    from twotower.data import msmarco
    from twotower.io.checksum import ALGORITHM, file_checksum

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "collection.tsv"
        make_collection(path, args.passages)
        mb = path.stat().st_size / 1e6
        head_tail(path)  # into the page cache

        def fresh_fingerprint():
            fp._KNOWN.clear()
            fp.file_fingerprint(path)

        def read_plain():  # the reader as it was: pyarrow reads the path itself, nothing hashed
            real = msmarco.hashed_open
            msmarco.hashed_open = lambda p: contextlib.nullcontext(str(p))
            try:
                msmarco.read_collection(path)
            finally:
                msmarco.hashed_open = real

        def read_hashed():
            fp._KNOWN.clear()
            msmarco.read_collection(path)

        rows = [
            ("head+tail SHA-256 (before)", best(lambda: head_tail(path), args.repeat)),
            (f"whole file, own pass ({ALGORITHM})", best(fresh_fingerprint, args.repeat)),
            ("whole file, own pass (sha256)", best(lambda: _sha256(path), args.repeat)),
            ("whole file, own pass (blake2b)", best(lambda: file_checksum(path, "blake2b"), args.repeat)),
            ("read_collection, no hashing", best(read_plain, args.repeat)),
            ("read_collection, hashing as it reads", best(read_hashed, args.repeat)),
            ("fingerprint after that read", best(lambda: fp.file_fingerprint(path), args.repeat)),
        ]
        rows += corpus_rows(path, Path(tmp) / "corpus", args.repeat)
    scale = 1_000_000 / args.passages
    label = "measured" if args.passages == 1_000_000 else f"extrapolated x{scale:g}"
    print(f"{args.passages:,} passages, {mb:.0f} MB, best of {args.repeat} (page cache warm)")
    print(f"| what | seconds at {args.passages:,} | seconds at 1M ({label}) | MB/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in rows:
        rate = f"{mb / seconds:,.0f}" if "own pass" in name or "hashing as" in name else "-"
        print(f"| {name} | {seconds:.3f} | {seconds * scale:.3f} | {rate} |")


def corpus_rows(tsv: Path, out: Path, repeat: int) -> list[tuple[str, float]]:
    """What the corpus checksums cost: written at build, verified at the first open in a process."""
    from twotower.data.corpus import Corpus
    from twotower.io import checksum

    folder = Corpus.build(tsv, out).path
    sums = checksum.folder_checksums(folder)

    def first_open():
        checksum.forget_verified()
        Corpus.open(folder)

    return [
        ("corpus checksums at build (all files)", best(lambda: checksum.folder_checksums(folder, list(sums)), repeat)),
        ("Corpus.open, first in a process (verifies)", best(first_open, repeat)),
        ("Corpus.open, again (verified already)", best(lambda: Corpus.open(folder), repeat)),
    ]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    main()
