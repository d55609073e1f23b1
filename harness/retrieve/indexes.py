"""Search indexes over chunks: BM25, tf-idf and embeddings, built once per corpus content."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.calls.embed import embed_normalised
from harness.errors import SuiteError
from harness.retrieve.corpus import Chunk, corpus_hash
from harness.suite import Retrieval, Variant
from harness.suite.kinds import RETRIEVAL_METHODS

# A retrieval method is one class registered with `@index(name)`: `build(texts, spec, variant,
# runs_dir, digest)` makes it, `search(queries, k)` answers [(chunk position, score)] per query,
# best first; `key(spec, variant)` adds what besides the corpus makes two indexes differ.
INDEXES: dict[str, type] = {}


def index(name: str):
    """Register a retrieval method under `name` (the value of `retrieval.method`)."""

    def register(cls):
        INDEXES[name] = cls
        if name not in RETRIEVAL_METHODS:
            RETRIEVAL_METHODS.append(name)
        return cls

    return register


DEFAULT_K = 4  # passages per query when `retrieval.k` is not set


def k_of(variant: Variant) -> int:
    return variant.retrieval.k if variant.retrieval else DEFAULT_K


def _top(scores, k: int, drop_zero: bool) -> list[tuple[int, float]]:
    import numpy as np

    order = np.argsort(-scores, kind="stable")[:k]  # stable: ties keep corpus order
    return [(int(i), float(scores[i])) for i in order if not (drop_zero and scores[i] <= 0)]


class TextIndex:
    """An index built from the chunk texts alone."""

    @classmethod
    def build(cls, texts: Sequence[str], spec: Retrieval, variant: Variant, runs_dir, digest: str):
        return cls(texts)

    @staticmethod
    def key(spec: Retrieval, variant: Variant) -> tuple:
        return ()


@index("bm25")
class Bm25Index(TextIndex):
    """bm25s over English-stopword-filtered word tokens. Chunks sharing no term score 0 and are dropped."""

    def __init__(self, texts: Sequence[str]):
        import bm25s

        self._bm25s = bm25s
        self.model = bm25s.BM25()
        tokens = bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)
        self.model.index(tokens, show_progress=False)
        self.n = len(texts)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        import numpy as np

        out = []
        for q in queries:
            tokens = self._bm25s.tokenize(
                [q], stopwords="en", return_ids=False, show_progress=False
            )[0]
            tokens = [t for t in tokens if t in self.model.vocab_dict]
            scores = self.model.get_scores(tokens) if tokens else np.zeros(self.n)
            out.append(_top(scores, k, drop_zero=True))
        return out


@index("tfidf")
class TfidfIndex(TextIndex):
    """scikit-learn tf-idf; rows are L2-normalised so a dot product is the cosine similarity."""

    def __init__(self, texts: Sequence[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(sublinear_tf=True)
        try:
            self.matrix = self.vectorizer.fit_transform(list(texts))
        except ValueError as e:  # "empty vocabulary": no word of 2+ characters anywhere
            raise SuiteError(
                f"tf-idf cannot index this corpus ({e}) — add text, or use method: bm25"
            ) from None

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        sims = (self.matrix @ self.vectorizer.transform(list(queries)).T).toarray()
        return [_top(sims[:, j], k, drop_zero=True) for j in range(len(queries))]


@index("embedding")
class EmbeddingIndex:
    """Vectors from any litellm embedding model; numpy cosine. Corpus vectors are cached on disk."""

    @classmethod
    def build(cls, texts: Sequence[str], spec: Retrieval, variant: Variant, runs_dir, digest: str):
        model = spec.embedding_model or ""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)
        cache_file = Path(runs_dir) / ".embeddings" / f"{digest[:24]}-{slug}.npy"
        return cls(texts, model, variant.api_base, cache_file)

    @staticmethod
    def key(spec: Retrieval, variant: Variant) -> tuple:
        return (spec.embedding_model, variant.api_base)

    def __init__(self, texts: Sequence[str], model: str, api_base: str | None, cache_file: Path):
        import numpy as np

        self.model, self.api_base = model, api_base
        vectors = None
        if cache_file.exists():
            try:
                vectors = np.load(cache_file)
            except (OSError, ValueError):
                vectors = None  # a torn or foreign file: recompute rather than fail
            if vectors is not None and vectors.shape[0] != len(texts):
                vectors = None
        if vectors is None:
            vectors = self.embed(texts)
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(cache_file)  # atomic: a concurrent reader never sees half a file
        self.vectors = vectors

    def embed(self, texts: Sequence[str]):
        import numpy as np

        return embed_normalised(self.model, self.api_base, texts, np.float32)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        sims = self.vectors @ self.embed(queries).T
        return [_top(sims[:, j], k, drop_zero=False) for j in range(len(queries))]


# In-process cache: one index per (corpus content, method, model), shared by every variant.
_INDEXES: dict[tuple, Any] = {}


def index_for(chunks: list[Chunk], spec: Retrieval, variant: Variant, runs_dir: Path):
    """The registered index for `spec.method` over `chunks`, built once per corpus content."""
    cls = INDEXES[spec.method]
    digest = corpus_hash(chunks)
    key = (digest, spec.method, *cls.key(spec, variant))
    if key not in _INDEXES:
        _INDEXES[key] = cls.build([c.text for c in chunks], spec, variant, runs_dir, digest)
    return _INDEXES[key]
