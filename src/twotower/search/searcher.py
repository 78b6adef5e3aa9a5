"""`Searcher`: a built index plus the checkpoint that built it, answering text queries.

searcher = Searcher.load("outputs/index/msmarco")
results = searcher.search("cooking an egg", k=10)
results.ids, results.scores, results.texts, results.encode_ms, results.search_ms
searcher.similarity("cooking an egg", "Boil the egg for seven minutes.")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from twotower.search.add import add_documents
from twotower.search.backends import open_backend
from twotower.search.documents import documents_from_mapping, read_documents
from twotower.search.encoding import default_device, load_encoder_with_identity
from twotower.search.errors import EmptyQueryError, IndexCorruptError, IndexMismatchError, SearchError
from twotower.search.faiss_backend import FaissBackend
from twotower.search.kinds import IndexKind, kind_from_dict, kind_to_dict, with_settings
from twotower.search.lexical import no_bm25, open_bm25
from twotower.search.manifest import Manifest, check_files, documents_file, index_lock, read_manifest
from twotower.search.modes import MODES, assemble, check_mode, fusion_settings
from twotower.search.results import Hit, Results
from twotower.search.store import Document, DocumentStore

__all__ = ["Searcher", "Results", "Hit", "MODES"]


class Searcher:
    """Query an index with the two-tower model that built it."""

    def __init__(self, folder: Path, manifest: Manifest, encoder, store: DocumentStore, backend, bm25=None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.encoder = encoder
        self.store = store
        self.backend = backend
        self.bm25 = bm25  # retrieval.bm25.BM25Index over the store's rows, or None (an index without BM25)

    @classmethod
    def load(
        cls,
        path: str | Path,
        checkpoint: str | Path | None = None,
        device: str | None = None,
        use_gpu: bool | None = None,
        verify: bool = True,
        milvus_uri: str | None = None,
        redis_url: str | None = None,
        **search_settings: Any,
    ) -> Searcher:
        """Open the index at `path`. `checkpoint` defaults to the one recorded in the manifest; either way its
        SHA-256 must match the one that built the index. Every file's checksum is checked against the manifest
        once per process (`verify=False` skips that for huge indexes; sizes are still checked). `milvus_uri` reaches a Milvus
        server whose credentials the manifest does not keep. `search_settings` override the kind's search knobs
        (`nprobe=64`, `ef_search=256`, `k_factor=16`)."""
        folder = Path(path)
        for attempt in range(3):
            manifest = read_manifest(folder)
            try:
                check_files(folder, manifest, verify)
                break
            except IndexCorruptError:
                # A writer may have committed a new build and removed the old files since the manifest was read.
                if attempt == 2 or read_manifest(folder).build_id == manifest.build_id:
                    raise
        encoder = cls._matching_encoder(folder, manifest, checkpoint, device or default_device())
        store = DocumentStore(folder / documents_file(manifest.build_id), readonly=True)
        if len(store) != manifest.count:
            store.close()
            raise IndexCorruptError(
                f"{store.path} holds {len(store):,} documents, the manifest says {manifest.count:,}; rebuild the index"
            )
        spec = with_settings(kind_from_dict(manifest.index), **search_settings)
        backend = open_backend(folder, manifest, spec, use_gpu, milvus_uri, redis_url)
        if manifest.backend == "faiss" and len(backend) != manifest.count:
            raise IndexCorruptError(
                f"{folder}: the vector index holds {len(backend):,} vectors, the manifest says {manifest.count:,}"
            )
        return cls(folder, manifest, encoder, store, backend, open_bm25(folder, manifest, store))

    @staticmethod
    def _matching_encoder(folder: Path, manifest: Manifest, checkpoint: str | Path | None, device: str):
        built_with = manifest.checkpoint
        path = Path(checkpoint) if checkpoint else Path(built_with["path"])
        if not path.is_file():
            why = "was given" if checkpoint else "built this index (per its manifest)"
            raise IndexMismatchError(
                f"checkpoint {path} {why} but does not exist; pass the checkpoint with --ckpt / checkpoint="
            )
        encoder, identity = load_encoder_with_identity(path, device)
        if identity["sha256"] != built_with["sha256"]:
            raise IndexMismatchError(
                f"{folder} was built with a different model than {path}: the index holds vectors of checkpoint "
                f"{built_with['path']} (sha256 {built_with['sha256'][:12]}, {_describe_model(built_with['model_config'])}, "
                f"{manifest.dim}-d), this file has sha256 {identity['sha256'][:12]} "
                f"({_describe_model(identity['model_config'])}). Vectors from two models are not comparable: rebuild "
                f"with `twotower index --ckpt {path} --out {folder} ...`, or pass the original checkpoint."
            )
        return encoder

    # -- querying -----------------------------------------------------------------------------------------

    @overload
    def search(
        self, queries: str, k: int = 10, mode: str = "dense", fusion: str | None = None, weight: float | None = None
    ) -> Results: ...

    @overload
    def search(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: str = "dense",
        fusion: str | None = None,
        weight: float | None = None,
    ) -> list[Results]: ...

    def search(self, queries, k: int = 10, mode: str = "dense", fusion: str | None = None, weight: float | None = None):
        """Top-`k` documents for one query (-> `Results`) or for each of a list of queries (-> list).

        `mode`: "dense" (the query tower and the vector index), "bm25" (the index's BM25 part) or "hybrid" (both,
        fused; `search.modes`); `self.modes` lists what this index serves. `fusion` ("weighted" | "rrf") and
        `weight` override, for this call, the fusion the manifest records (`twotower tune-fusion`)."""
        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                where = "" if single else f" (query {i})"
                raise EmptyQueryError(f"the query is empty{where}: give some words to search for")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        check_mode(mode)
        if mode not in self.modes:
            raise no_bm25(self.folder, mode)
        out = assemble(self, texts, k, mode, self.fusion(fusion, weight))
        return out[0] if single else out

    @property
    def modes(self) -> tuple[str, ...]:
        """The search modes this index serves: all of `MODES` with a BM25 part, else ("dense",)."""
        return MODES if self.bm25 is not None else ("dense",)

    def fusion(self, method: str | None = None, weight: float | None = None) -> dict:
        """The hybrid fusion in force ({"method", "weight", "depth"}): the manifest's (`tune-fusion`), else the
        default, with `method` / `weight` overriding."""
        return fusion_settings(self.manifest.fusion, method, weight)

    def similarity(self, a: str | Sequence[str], b: str | Sequence[str]) -> float | np.ndarray:
        """Cosine similarity of `a` through the query tower and `b` through the document tower: a float for two
        texts, a (len(a), len(b)) matrix for lists."""
        texts_a, texts_b = _as_list(a), _as_list(b)
        if not texts_a or not texts_b or any(not isinstance(t, str) or not t.strip() for t in texts_a + texts_b):
            raise EmptyQueryError("similarity needs non-empty texts on both sides")
        qa = self.encoder.encode_queries(texts_a)
        db = self.encoder.encode_documents(texts_b)
        matrix = qa @ db.T
        return float(matrix[0, 0]) if isinstance(a, str) and isinstance(b, str) else matrix

    def tune(self, **search_settings: Any) -> None:
        """Change search-time knobs of the loaded index, e.g. `tune(ef_search=256)` or `tune(nprobe=8)`."""
        spec = with_settings(self.spec, **search_settings)
        self.backend.configure(spec)

    # -- growing the index --------------------------------------------------------------------------------

    def add(
        self,
        documents: str | Path | Mapping[str, str] | Sequence[Document],
        skip_existing: bool = False,
        batch_size: int = 512,
        progress: bool = False,
    ) -> int:
        """Encode and add documents (a collection file, {id: text}, or `Document`s); returns how many were added.

        Ids already in the index raise `DuplicateDocumentError` unless `skip_existing`. An index with a BM25 part
        gets it rebuilt over all its documents (BM25's statistics are corpus-wide), in the same commit. The change
        is committed atomically: on any error the index on disk is as before.
        """
        if isinstance(documents, (str, Path)):
            documents = read_documents(documents)
        elif isinstance(documents, Mapping):
            documents = documents_from_mapping(documents)
        with index_lock(self.folder):  # one writer at a time; each starts from the latest commit
            current = read_manifest(self.folder)
            if current.build_id != self.manifest.build_id:
                if (
                    current.checkpoint.get("sha256") != self.manifest.checkpoint.get("sha256")
                    or current.backend != self.manifest.backend
                    or current.milvus != self.manifest.milvus
                    or current.redis != self.manifest.redis
                ):
                    raise SearchError(
                        f"{self.folder} was rebuilt since it was loaded (build {current.build_id}); "
                        "load it again with Searcher.load before adding"
                    )
                check_files(self.folder, current, verify=False)
                self._reopen(current)  # another process added documents since: start from its commit
            try:
                manifest, added = add_documents(
                    self.folder,
                    self.encoder,
                    self.manifest,
                    self.backend,
                    list(documents),
                    skip_existing,
                    batch_size,
                    progress,
                )
            except BaseException:
                self._reopen(self.manifest)  # the in-memory vectors may hold the failed rows
                raise
            self._reopen(manifest)
        return added

    def _reopen(self, manifest: Manifest) -> None:
        self.store.close()
        self.manifest = manifest
        self.store = DocumentStore(self.folder / documents_file(manifest.build_id), readonly=True)
        self.bm25 = open_bm25(self.folder, manifest, self.store)
        if manifest.backend == "faiss":
            use_gpu = self.backend.device == "GPU"
            self.backend.close()
            self.backend = FaissBackend.load(self.folder, manifest.build_id, self.spec, use_gpu)
        else:
            self.backend.visible = manifest.count

    # -- description --------------------------------------------------------------------------------------

    @property
    def spec(self) -> IndexKind:
        return self.backend.spec

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def device(self) -> str:
        return self.backend.device

    def describe(self, short: bool = False) -> str:
        if short:
            return f"{self.manifest.backend} {self.spec.kind}{' + bm25' if self.bm25 else ''} · {len(self):,} passages · {self.device}"
        settings = ", ".join(f"{k}={v}" for k, v in kind_to_dict(self.spec).items() if k != "kind")
        modes = "/".join(self.modes)
        return f"{self.manifest.backend} {self.spec.kind}{f' ({settings})' if settings else ''} · {len(self):,} passages · {self.manifest.dim}-d · {self.device} · modes {modes}"

    def close(self) -> None:
        self.store.close()
        self.backend.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_list(texts: str | Sequence[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def _describe_model(model_config: dict[str, Any]) -> str:
    tower = model_config.get("tower", {})
    name = str(tower.get("_target_", "?")).rsplit(".", 1)[-1]
    return f"{name}, {(model_config.get('tokenizer') or {}).get('kind', '?')} tokens"
