"""Index speed: build a 10k-chunk BM25 (and tf-idf) index and time queries.

    python benchmarks/retrieval.py [N_CHUNKS]

Chunks are ~800 characters (120 words drawn with a fixed seed from the PubMedQA abstracts'
vocabulary), the size `chunk: {size: 800}` produces. Queries are 100 PubMedQA questions.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from harness.retrieve.indexes import Bm25Index, TfidfIndex

ROOT = Path(__file__).resolve().parents[1]


def _lines(name: str) -> list[str]:
    return (ROOT / "data/pubmedqa" / name).read_text(encoding="utf-8").splitlines()


def main(n_chunks: int = 10_000) -> None:
    passages = [json.loads(line)["text"] for line in _lines("passages.jsonl")]
    questions = [json.loads(line)["question"] for line in _lines("test.jsonl")]
    words = " ".join(passages).split()
    rng = np.random.default_rng(0)
    chunks = [" ".join(rng.choice(words, 120)) for _ in range(n_chunks)]
    print(f"{n_chunks} chunks, mean {np.mean([len(c) for c in chunks]):.0f} chars")
    for name, cls in (("bm25", Bm25Index), ("tfidf", TfidfIndex)):
        t0, c0 = time.perf_counter(), time.process_time()
        index = cls(chunks)
        t1, c1 = time.perf_counter(), time.process_time()
        index.search(questions, 4)
        t2 = time.perf_counter()
        print(
            f"{name}: build {t1 - t0:.2f} s wall ({c1 - c0:.2f} s CPU), "
            f"{len(questions)} queries {1000 * (t2 - t1) / len(questions):.2f} ms/query"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
