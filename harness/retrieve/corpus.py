"""Corpora and chunks: documents from files or a data column, split into overlapping chunks."""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness._util.paths import not_found
from harness.data.dataset import read_table
from harness.errors import SuiteError
from harness.suite import CorpusColumn, Suite, Variant

CORPUS_EXTENSIONS = (".md", ".markdown", ".txt")

# ---------------------------------------------------------------- corpus and chunks


@dataclass(frozen=True)
class Document:
    id: str
    source: str
    text: str


@dataclass(frozen=True)
class Chunk:
    id: str  # the document id (what data.gold names)
    source: str
    text: str
    n: int  # position of the chunk inside its document


_TOKEN = re.compile(r"\S+")


def chunk_text(text: str, size: int, overlap: int, unit: str = "chars") -> list[str]:
    """Fixed windows of `size` chars (or whitespace tokens) sharing `overlap` with the previous one.

    Token windows are cut from the original text (first token start to last token end), so
    spacing and newlines inside a chunk are kept.
    """
    if overlap >= size:
        raise ValueError(f"overlap ({overlap}) must be smaller than size ({size})")
    if not text.strip():
        return []
    step = size - overlap
    if unit == "chars":
        if len(text) <= size:
            return [text]
        starts = range(0, len(text) - overlap, step)
        return [text[s : s + size] for s in starts]
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if len(spans) <= size:
        return [text[spans[0][0] : spans[-1][1]]]
    out = []
    for s in range(0, len(spans) - overlap, step):
        window = spans[s : s + size]
        out.append(text[window[0][0] : window[-1][1]])
    return out


def chunk_documents(docs: Iterable[Document], size: int, overlap: int, unit: str) -> list[Chunk]:
    return [
        Chunk(d.id, d.source, piece, n)
        for d in docs
        for n, piece in enumerate(chunk_text(d.text, size, overlap, unit))
    ]


def corpus_hash(chunks: Sequence[Chunk]) -> str:
    """Content hash of a chunked corpus: equal hashes mean an index can be reused."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(json.dumps([c.id, c.source, c.n, c.text], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def _corpus_key(variant: Variant) -> tuple:
    return ("variants", variant.index, "retrieval", "corpus")


def load_corpus(suite: Suite, variant: Variant) -> list[Document]:
    """The variant's documents; every user-fixable problem is a SuiteError naming the file."""
    spec = variant.retrieval
    assert spec is not None
    key = _corpus_key(variant)
    if isinstance(spec.corpus, CorpusColumn):
        docs = _column_documents(suite, spec.corpus, key)
        what = f"column {spec.corpus.text!r} of {spec.corpus.path}"
    else:
        patterns = [spec.corpus] if isinstance(spec.corpus, str) else list(spec.corpus)
        docs = [_read_document(suite, p, key) for p in _corpus_files(suite, patterns, key)]
        what = ", ".join(patterns)
    if not any(d.text.strip() for d in docs):
        raise suite.fail(
            f"the corpus is empty: {what} holds no text — add passages, or point `corpus` at other files",
            key,
        )
    return docs


def _corpus_files(suite: Suite, patterns: list[str], key: tuple) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        path = suite.resolve_path(pattern)
        if glob.has_magic(pattern):
            matched = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            matched = [p for p in matched if p.is_file()]
            if not matched:
                raise suite.fail(
                    f"{pattern!r} matches no files (looked under {suite.root}) — check the glob (relative to the suite file)",
                    key,
                )
        elif path.is_dir():
            matched = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_EXTENSIONS
            )
            if not matched:
                raise suite.fail(
                    f"{pattern!r} is a folder with no .md or .txt files — add passages or fix the path",
                    key,
                )
        elif path.exists():
            matched = [path]
        else:
            raise suite.fail(not_found(path), key)
        for p in matched:
            if p.suffix.lower() not in CORPUS_EXTENSIONS:
                raise suite.fail(
                    f"{_rel(suite, p)}: unsupported corpus file type {p.suffix or '(none)'} — use .md or .txt "
                    "(convert it to text), narrow the glob, or use a data file column {path, text, id}",
                    key,
                )
        files.extend(p for p in matched if p not in files)
    return files


def _rel(suite: Suite, path: Path) -> str:
    try:
        return path.resolve().relative_to(suite.root).as_posix()
    except ValueError:
        return path.as_posix()


def _read_document(suite: Suite, path: Path, key: tuple) -> Document:
    rel = _rel(suite, path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise suite.fail(
            f"{rel}: cannot read ({e.strerror}) — check the file's permissions", key
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise suite.fail(
            f"{rel}:{line}: not UTF-8 (byte {e.start}) — save the file as UTF-8", key
        ) from None
    return Document(id=rel, source=rel, text=text)


def _column_documents(suite: Suite, spec: CorpusColumn, key: tuple) -> list[Document]:
    path = suite.resolve_path(spec.path)
    try:
        rows = read_table(path)
    except SuiteError as e:
        raise suite.fail(e.message, (*key, "path")) from None
    columns = set().union(*(r.keys() for r in rows[:1000]))
    for field, col in (("text", spec.text), ("id", spec.id)):
        if col is not None and col not in columns:
            raise suite.fail(
                f"column {col!r} not in {path.name} (columns: {', '.join(sorted(map(str, columns)))}) — fix the name",
                (*key, field),
            )
    docs = []
    for i, row in enumerate(rows, start=1):
        text = row.get(spec.text)
        text = "" if text is None or (isinstance(text, float) and text != text) else str(text)
        doc_id = str(row.get(spec.id)) if spec.id else str(i)
        docs.append(Document(id=doc_id, source=f"{spec.path}:{i}", text=text))
    return docs
