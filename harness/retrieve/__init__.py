"""RAG retrieval: corpora, chunking, BM25 / tf-idf / embedding search, and users' own retrievers.

`build_retriever(suite, variant)` returns an object whose `.retrieve(example)` gives the chunks a
rag variant's templates see as `context`: `[{"text", "source", "id", "score", "chunk"}]`, best
first. `id` is the passage's document id (file path relative to the suite, or the corpus data
file's id column): it is what `data.gold` names, so recall@k and MRR compare like with like.

Indexes are built once per corpus content (in-process cache keyed by a hash of the chunks), never
per example; embedding vectors are also kept on disk under `runs/.embeddings/`.
"""

from harness.retrieve.check import validate_retrieval
from harness.retrieve.corpus import chunk_text, load_corpus
from harness.retrieve.gold import gold_hits, gold_ids, retrieval_metrics
from harness.retrieve.indexes import DEFAULT_K, index, k_of
from harness.retrieve.retrievers import Retriever, build_retriever

__all__ = [
    "DEFAULT_K",
    "Retriever",
    "build_retriever",
    "chunk_text",
    "gold_hits",
    "gold_ids",
    "index",
    "k_of",
    "load_corpus",
    "retrieval_metrics",
    "validate_retrieval",
]
