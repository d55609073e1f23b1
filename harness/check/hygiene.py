"""Data hygiene: train/test overlap (exact and near-duplicate), classes missing from train, imbalance.

A test example that also sits in the training data (or the few-shot pool, which is the train
split) measures memory, not skill. Texts are compared after normalisation (Unicode NFKC,
case-folded, punctuation dropped, whitespace collapsed). Near-duplicates are pairs whose
character n-gram tf-idf vectors have cosine similarity ≥ a threshold; the similarity matrix is
computed sparse and in chunks of test rows so 3k × 10k stays within a couple of seconds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness._util.text import fold, inputs_text
from harness.check.readiness import PASS, WARN, Line
from harness.data.dataset import Example

DEFAULT_NEAR_DUP_THRESHOLD = 0.9
IMBALANCE_WARN_RATIO = 10.0  # largest class / smallest class
SHOW_PAIRS = 5  # pairs printed by `harness check`; --json lists them all
TEXT_CHARS = 60
_CHUNK = 1000  # test rows per sparse product


def example_text(example: Example) -> str:
    """The text a model sees from an example: its input field values, one per line."""
    return inputs_text(example.inputs)


def truncate(text: str, n: int = TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Pair:
    test_id: str
    train_id: str
    test_text: str
    train_text: str
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id,
            "train_id": self.train_id,
            "test_text": truncate(self.test_text, 200),
            "train_text": truncate(self.train_text, 200),
            "similarity": round(self.similarity, 4),
        }


@dataclass
class Hygiene:
    threshold: float
    compared: bool = True  # False when there is no train split to compare against
    exact: list[Pair] = field(default_factory=list)
    near: list[Pair] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    test_counts: dict[str, int] = field(default_factory=dict)
    train_counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[Line]:
        out: list[Line] = []
        if self.compared:
            out.append(_pairs_line("exact duplicates", self.exact, "identical after normalisation"))
            out.append(
                _pairs_line(
                    "near duplicates", self.near, f"char n-gram cosine ≥ {self.threshold:g}"
                )
            )
        if self.test_counts and self.train_counts:
            if self.missing_classes:
                shown = ", ".join(self.missing_classes[:10]) + (
                    " …" if len(self.missing_classes) > 10 else ""
                )
                out.append(
                    (
                        WARN,
                        "classes missing from train",
                        f"{len(self.missing_classes)} test class(es) never appear in train: {shown}",
                    )
                )
            else:
                out.append(
                    (PASS, "classes missing from train", "none — every test class is in train")
                )
        for split, counts in (("test", self.test_counts), ("train", self.train_counts)):
            if counts:
                out.append(_balance_line(split, counts))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "near_dup_threshold": self.threshold,
            "exact_duplicates": [p.to_dict() for p in self.exact],
            "near_duplicates": [p.to_dict() for p in self.near],
            "missing_classes": self.missing_classes,
            "test_label_counts": self.test_counts,
            "train_label_counts": self.train_counts,
        }


def _pairs_line(name: str, pairs: list[Pair], how: str) -> Line:
    if not pairs:
        return (PASS, name, f"none between train/few-shot pool and test ({how})")
    n_test = len({p.test_id for p in pairs})
    # One pair per indented line under the check line: ids to find them, texts to judge them.
    shown = "".join(
        f"\n      test {p.test_id} {truncate(p.test_text)!r} ~ train {p.train_id} {truncate(p.train_text)!r}"
        + (f" ({p.similarity:.2f})" if name.startswith("near") else "")
        for p in pairs[:SHOW_PAIRS]
    )
    more = (
        f"\n      … {len(pairs) - SHOW_PAIRS} more (--json lists all)"
        if len(pairs) > SHOW_PAIRS
        else ""
    )
    return (
        WARN,
        name,
        f"{len(pairs)} pair(s) over {n_test} test example(s) ({how}) — drop them from train{shown}{more}",
    )


def _balance_line(split: str, counts: dict[str, int]) -> Line:
    lo, hi = min(counts.values()), max(counts.values())
    ratio = hi / lo
    smallest = min(counts, key=lambda k: (counts[k], k))
    detail = f"{len(counts)} classes, {lo}–{hi} examples per class (largest/smallest {ratio:.1f}; smallest {smallest!r})"
    if ratio >= IMBALANCE_WARN_RATIO:
        return (
            WARN,
            f"{split} label balance",
            detail + " — imbalanced: report macro-F1 and per-class scores",
        )
    return (PASS, f"{split} label balance", detail)


def find_overlap(
    test: list[Example], train: list[Example], threshold: float = DEFAULT_NEAR_DUP_THRESHOLD
) -> tuple[list[Pair], list[Pair]]:
    """(exact, near) pairs between test and train. Near pairs exclude exact ones."""
    test_texts = [example_text(e) for e in test]
    train_texts = [example_text(e) for e in train]
    test_norm = [fold(t) for t in test_texts]
    train_norm = [fold(t) for t in train_texts]

    by_text: dict[str, list[int]] = {}
    for j, t in enumerate(train_norm):
        by_text.setdefault(t, []).append(j)
    exact = [
        Pair(test[i].id, train[j].id, test_texts[i], train_texts[j], 1.0)
        for i, t in enumerate(test_norm)
        for j in by_text.get(t, ())
    ]
    near = []
    if threshold <= 1.0 and test and train:
        for i, j, sim in _similar_pairs(test_norm, train_norm, threshold):
            if test_norm[i] != train_norm[j]:
                near.append(Pair(test[i].id, train[j].id, test_texts[i], train_texts[j], sim))
    return exact, near


def _similar_pairs(a: list[str], b: list[str], threshold: float):
    """(i, j, cosine) for every pair with cosine ≥ threshold, by char n-gram tf-idf, sorted."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    # char_wb 3–5-grams: robust to word order nits and typos; l2-normalised so a dot is a cosine.
    vec = TfidfVectorizer(analyzer="char", ngram_range=(3, 5), dtype=np.float32)
    try:
        X = vec.fit_transform(a + b)  # one pass: fit and transform together, then split
    except ValueError:  # every text empty or shorter than 3 characters: nothing to compare
        return []
    A, Bt = X[: len(a)], X[len(a) :].T.tocsr()
    out = []
    for start in range(0, A.shape[0], _CHUNK):
        sims = (A[start : start + _CHUNK] @ Bt).tocoo()
        keep = sims.data >= threshold - 1e-6  # float32 rounding: identical vectors give 0.9999999
        for i, j, s in zip(sims.row[keep], sims.col[keep], sims.data[keep], strict=True):
            out.append((start + int(i), int(j), min(float(s), 1.0)))
    out.sort(key=lambda t: (-t[2], t[0], t[1]))
    return out


def label_counts(examples: list[Example]) -> dict[str, int]:
    return dict(
        sorted(Counter(str(e.target) for e in examples if e.target not in (None, "")).items())
    )


def check_hygiene(
    test: list[Example],
    train: list[Example],
    *,
    task: str,
    threshold: float = DEFAULT_NEAR_DUP_THRESHOLD,
) -> Hygiene:
    exact, near = find_overlap(test, train, threshold) if train else ([], [])
    report = Hygiene(threshold=threshold, compared=bool(train), exact=exact, near=near)
    if task == "classification":
        report.test_counts = label_counts(test)
        report.train_counts = label_counts(train)
        if train:
            report.missing_classes = sorted(set(report.test_counts) - set(report.train_counts))
    return report
