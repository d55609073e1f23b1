"""RAG retrieval: corpora, chunking, BM25 / tf-idf / embedding search, and users' own retrievers.

`build_retriever(suite, variant)` returns an object whose `.retrieve(example)` gives the chunks a
rag variant's templates see as `context`: `[{"text", "source", "id", "score", "chunk"}]`, best
first. `id` is the passage's document id (file path relative to the suite, or the corpus data
file's id column): it is what `data.gold` names, so recall@k and MRR compare like with like.

Indexes are built once per corpus content (in-process cache keyed by a hash of the chunks), never
per example; embedding vectors are also kept on disk under `runs/.embeddings/`.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ProviderError, SuiteError, SuiteErrors
from harness.suite import CorpusColumn, Retrieval, Suite, Variant

CORPUS_EXTENSIONS = (".md", ".markdown", ".txt")
EMBED_BATCH = 64  # inputs per embedding request: well under every provider's limit

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
            raise suite.fail(
                f"file not found: {path} — check the path (relative to the suite file)", key
            )
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
    from harness.data import read_records

    path = suite.resolve_path(spec.path)
    try:
        rows = read_records(path)
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


# ---------------------------------------------------------------- indexes


def _top(scores, k: int, drop_zero: bool) -> list[tuple[int, float]]:
    import numpy as np

    order = np.argsort(-scores, kind="stable")[:k]  # stable: ties keep corpus order
    return [(int(i), float(scores[i])) for i in order if not (drop_zero and scores[i] <= 0)]


class Bm25Index:
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


class TfidfIndex:
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


class EmbeddingIndex:
    """Vectors from any litellm embedding model; numpy cosine. Corpus vectors are cached on disk."""

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


def embed_normalised(model: str, api_base: str | None, texts: Sequence[str], dtype):
    """Unit-length vectors (rows) of `texts` from any litellm embedding model, sent in batches of
    EMBED_BATCH (retried); a zero vector stays zero."""
    import numpy as np

    from harness.engine import missing_credentials

    kwargs: dict[str, Any] = {}
    if api_base:
        kwargs["api_base"] = api_base
        if missing_credentials(model, None):  # slow (validate_environment): once, not per batch
            kwargs["api_key"] = "no-key"  # a self-hosted server needs none; the SDK insists on one
    rows: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        rows.extend(_embed_batch(model, list(texts[start : start + EMBED_BATCH]), kwargs))
    vectors = np.asarray(rows, dtype=dtype)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _embed_batch(model: str, batch: list[str], kwargs: dict[str, Any]) -> list[list[float]]:
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    from harness.engine import classify, import_litellm, reason

    litellm = import_litellm()

    # Retries in one place (tenacity, on the engine's transient kinds); the SDK's are turned off.
    @retry(
        retry=retry_if_exception(lambda e: classify(e)[1]),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def call():
        return litellm.embedding(model=model, input=batch, max_retries=0, timeout=60, **kwargs)

    try:
        response = call()
    except Exception as e:
        raise ProviderError(f"embedding model {model!r} failed: {reason(e, 1)}") from None
    items = sorted(response.data, key=lambda d: _field(d, "index") or 0)
    if len(items) != len(batch):
        raise ProviderError(
            f"embedding model {model!r} returned {len(items)} vectors for {len(batch)} inputs"
        )
    return [list(_field(d, "embedding")) for d in items]


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


# In-process cache: one index per (corpus content, method, model), shared by every variant.
_INDEXES: dict[tuple, Any] = {}


def _index_for(chunks: list[Chunk], spec: Retrieval, variant: Variant, runs_dir: Path):
    digest = corpus_hash(chunks)
    model = spec.embedding_model if spec.method == "embedding" else None
    key = (digest, spec.method, model, variant.api_base if model else None)
    if key not in _INDEXES:
        texts = [c.text for c in chunks]
        if spec.method == "bm25":
            _INDEXES[key] = Bm25Index(texts)
        elif spec.method == "tfidf":
            _INDEXES[key] = TfidfIndex(texts)
        else:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model or "")
            cache_file = runs_dir / ".embeddings" / f"{digest[:24]}-{slug}.npy"
            _INDEXES[key] = EmbeddingIndex(texts, model or "", variant.api_base, cache_file)
    return _INDEXES[key]


# ---------------------------------------------------------------- queries


@functools.lru_cache(maxsize=1)
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def _query_fn(suite: Suite, variant: Variant) -> Callable[[Any], str]:
    """Example -> search query: the `query` template, or the input fields joined by newlines."""
    from jinja2 import TemplateError

    source = variant.retrieval.query if variant.retrieval else None
    if source is None:
        return lambda ex: "\n".join(str(v) for v in ex.inputs.values() if v is not None)
    key = ("variants", variant.index, "retrieval", "query")
    try:
        template = _env().from_string(source)
    except TemplateError as e:
        raise suite.fail(f"query template: {e} — fix the Jinja2 syntax", key) from None

    def render(ex) -> str:
        try:
            return template.render(dict(ex.inputs))
        except TemplateError as e:
            raise suite.fail(
                f"query template: {e} — it sees the input fields {', '.join(ex.inputs)}", key
            ) from None

    return render


# ---------------------------------------------------------------- retrievers


class Retriever:
    """What the engine calls: `.retrieve(example)` -> chunks, best first."""

    name: str

    def retrieve(self, example) -> list[dict]:
        return self.retrieve_all([example])[example.id]

    def retrieve_all(self, examples: Sequence) -> dict[str, list[dict]]:
        """Chunks for many examples at once (embedding queries are sent in batches)."""
        return {ex.id: self.retrieve(ex) for ex in examples}


class IndexRetriever(Retriever):
    def __init__(self, chunks: list[Chunk], index, k: int, query: Callable[[Any], str], name: str):
        self.chunks, self.index, self.k, self.query, self.name = chunks, index, k, query, name

    def retrieve_all(self, examples: Sequence) -> dict[str, list[dict]]:
        hits = self.index.search([self.query(ex) for ex in examples], self.k)
        return {
            ex.id: [self._chunk(i, s) for i, s in found]
            for ex, found in zip(examples, hits, strict=True)
        }

    def _chunk(self, i: int, score: float) -> dict:
        c = self.chunks[i]
        return {
            "text": c.text,
            "source": c.source,
            "id": c.id,
            "score": round(score, 6),
            "chunk": c.n,
        }


class FunctionRetriever(Retriever):
    """The user's `retriever: "package.module:function"`, called as function(query, k)."""

    def __init__(
        self, fn: Callable, k: int, query: Callable[[Any], str], name: str, where: Callable
    ):
        self.fn, self.k, self.query, self.name, self._fail = fn, k, query, name, where

    def retrieve(self, example) -> list[dict]:
        query = self.query(example)
        try:
            result = self.fn(query, self.k)
        except Exception as e:
            raise self._fail(
                f"{self.name} raised {type(e).__name__}: {e} (query {query[:80]!r}) — fix your retriever"
            ) from e
        return normalise_chunks(result, self.name, self._fail)


def normalise_chunks(result: Any, name: str, fail: Callable[[str], SuiteError]) -> list[dict]:
    """Validate a user retriever's return value: a list of dicts with `text` (or plain strings)."""
    expected = (
        "expected a list of chunks like [{'text': ..., 'id': ..., 'source': ..., 'score': ...}]"
    )
    if isinstance(result, (str, bytes, dict)) or not isinstance(result, Iterable):
        raise fail(f"{name} returned {type(result).__name__}; {expected}")
    out = []
    for i, item in enumerate(list(result)):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            raise fail(f"{name} returned a {type(item).__name__} at position {i}; {expected}")
        if not isinstance(item.get("text"), str):
            raise fail(f"{name}: chunk {i} has no 'text' string (keys: {sorted(item)}); {expected}")
        score = item.get("score")
        if score is not None and not isinstance(score, (int, float)):
            raise fail(f"{name}: chunk {i} has a non-numeric 'score' {score!r}; {expected}")
        out.append(
            {
                **item,
                "source": str(item.get("source") if item.get("source") is not None else name),
                "id": str(item["id"]) if item.get("id") is not None else str(i),
                "score": float(score) if score is not None else None,
            }
        )
    return out


def import_retriever(suite: Suite, variant: Variant) -> Callable:
    """Import `package.module:function` with the suite's folder first on sys.path."""
    spec = variant.retriever or ""
    key = ("variants", variant.index, "retriever")
    module_name, _, fn_name = spec.partition(":")
    root = str(suite.root)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise suite.fail(
            f"cannot import {module_name!r} ({e}) — put {module_name.replace('.', '/')}.py next to the "
            "suite file or install the package, and spell it as package.module:function",
            key,
        ) from None
    except Exception as e:
        raise suite.fail(
            f"importing {module_name!r} failed: {type(e).__name__}: {e} — fix the module", key
        ) from None
    finally:
        if added:
            sys.path.remove(root)
    fn = getattr(module, fn_name, None)
    if fn is None:
        funcs = sorted(
            n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")
        )
        raise suite.fail(
            f"{module_name!r} has no function {fn_name!r} (functions: {', '.join(funcs) or 'none'}) — fix the name",
            key,
        )
    if not callable(fn):
        raise suite.fail(
            f"{spec} is a {type(fn).__name__}, not a function — point at fn(query, k)", key
        )
    try:
        inspect.signature(fn).bind("query", 4)
    except TypeError:
        raise suite.fail(
            f"{spec} must accept (query, k) — got {fn_name}{inspect.signature(fn)}", key
        ) from None
    except ValueError:
        pass  # builtins without a signature: trust them
    return fn


def build_retriever(suite: Suite, variant: Variant, *, runs_dir: Path | str = "runs") -> Retriever:
    """The retriever of a rag variant. Indexes are shared across variants with the same corpus."""
    if variant.retriever:
        fn = import_retriever(suite, variant)
        key = ("variants", variant.index, "retriever")
        k = variant.retrieval.k if variant.retrieval else 4
        return FunctionRetriever(
            fn, k, _query_fn(suite, variant), variant.retriever, lambda msg: suite.fail(msg, key)
        )
    spec = variant.retrieval
    if spec is None:
        raise suite.fail(
            "a rag variant needs `retrieval:` or `retriever:`", ("variants", variant.index)
        )
    _check_spec(suite, variant)
    if spec.method == "embedding":
        from harness.engine import missing_credentials

        missing = missing_credentials(spec.embedding_model, variant.api_base)
        if missing:  # before any request, like the chat models' check (exit 2, not 3)
            raise suite.fail(
                f"embedding model {spec.embedding_model} needs {' and '.join(missing)} — set it, "
                "or choose method: bm25",
                ("variants", variant.index, "retrieval", "embedding_model"),
            )
    chunks = chunk_documents(
        load_corpus(suite, variant), spec.chunk.size, spec.chunk.overlap, spec.chunk.unit
    )
    index = _index_for(chunks, spec, variant, Path(runs_dir))
    return IndexRetriever(chunks, index, spec.k, _query_fn(suite, variant), f"{spec.method}")


def _check_spec(suite: Suite, variant: Variant) -> None:
    spec = variant.retrieval
    base = ("variants", variant.index, "retrieval")
    if spec.chunk.overlap >= spec.chunk.size:
        raise suite.fail(
            f"overlap ({spec.chunk.overlap}) must be smaller than size ({spec.chunk.size}) — e.g. overlap: {spec.chunk.size // 8}",
            (*base, "chunk", "overlap"),
        )
    if spec.method == "embedding" and not spec.embedding_model:
        raise suite.fail(
            "method: embedding needs `embedding_model:` — any litellm embedding model, e.g. openai/text-embedding-3-small",
            (*base, "method"),
        )
    if spec.method != "embedding" and spec.embedding_model:
        raise suite.fail(
            f"embedding_model is only used by method: embedding (method is {spec.method})",
            (*base, "embedding_model"),
        )


# ---------------------------------------------------------------- harness check


def _check_query(suite: Suite, variant: Variant) -> None:
    """The query template compiles and uses only input fields (the target must not leak into it)."""
    from jinja2 import meta

    source = variant.retrieval.query if variant.retrieval else None
    if source is None:
        return
    _query_fn(suite, variant)  # syntax errors, with the key
    inputs = suite.spec.data.inputs
    unknown = meta.find_undeclared_variables(_env().parse(source)) - set(inputs)
    if unknown:
        raise suite.fail(
            f"query template uses {', '.join(sorted(unknown))} — it sees only the input fields {', '.join(inputs)}",
            ("variants", variant.index, "retrieval", "query"),
        )


def validate_retrieval(
    suite: Suite, examples: Sequence | None = None
) -> list[tuple[str, str, str]]:
    """Check every rag variant without calling a model; returns (status, name, detail) lines.

    With the test `examples`, also reports gold ids (data.gold) that no corpus document carries.

    Problems in several variants are raised together as SuiteErrors (exit 2).
    """
    from jinja2 import meta

    lines: list[tuple[str, str, str]] = []
    problems: list[SuiteError] = []
    corpora: list[tuple[Variant, list[Document]]] = []
    for variant in suite.variants:
        if variant.kind != "rag":
            continue
        try:
            _check_query(suite, variant)
            spec = variant.retrieval
            k = spec.k if spec else 4
            if variant.retriever:
                import_retriever(suite, variant)
                detail = f"your retriever {variant.retriever} (imported), k={k}"
            else:
                _check_spec(suite, variant)
                docs = load_corpus(suite, variant)
                chunks = chunk_documents(docs, spec.chunk.size, spec.chunk.overlap, spec.chunk.unit)
                model = f" {spec.embedding_model}" if spec.method == "embedding" else ""
                detail = (
                    f"{len(docs)} documents → {len(chunks)} chunks, {spec.method}{model}, k={k}"
                )
                corpora.append((variant, docs))
        except SuiteErrors as e:
            problems.extend(e.errors)
            continue
        except SuiteError as e:
            problems.append(e)
            continue
        lines.append(("pass", f"retrieval ({variant.name})", detail))
        used = set()
        for source in (variant.system, variant.user):
            if source:
                try:
                    used |= meta.find_undeclared_variables(_env().parse(source))
                except Exception:  # syntax errors are reported by templates.validate_templates
                    used.add("context")
        if "context" not in used:
            lines.append(
                (
                    "warn",
                    f"retrieval ({variant.name})",
                    "the templates never use `context`, so retrieved chunks never reach the model — "
                    "add {% for c in context %}{{ c.text }} {% endfor %} to `user`",
                )
            )
    if problems:
        raise SuiteErrors(problems)
    if lines and suite.spec.data.gold:
        lines.append(
            (
                "pass",
                "retrieval metrics",
                f"recall@k and MRR against data.gold ({suite.spec.data.gold})",
            )
        )
        for variant, docs in corpora if examples else []:
            lines.extend(_gold_coverage(variant, docs, examples, suite.spec.data.gold))
    return lines


def _gold_coverage(variant: Variant, docs: list[Document], examples: Sequence, field: str) -> list:
    """Warn when gold ids name no corpus document: recall could never reach 1 (a typo'd id?)."""
    items = [{"id": d.id, "source": d.source} for d in docs]
    wanted = [(ex.id, g) for ex in examples for g in sorted(gold_ids(ex.gold))]
    missing = [(ex_id, g) for ex_id, g in wanted if not any(_matches(it, {g}) for it in items)]
    if not missing:
        return []
    ex_id, g = missing[0]
    return [
        (
            "warn",
            f"retrieval ({variant.name})",
            f"{len(missing)} of {len(wanted)} gold ids in {field!r} match no corpus document "
            f"(first: {g!r} of example {ex_id}) — fix the ids or add the passages; those examples "
            "count as retrieval misses",
        )
    ]


# ---------------------------------------------------------------- metrics


def gold_ids(value: Any) -> set[str]:
    """The gold passage ids of an example: a list, a JSON list in text, or one id."""
    if value is None or (isinstance(value, float) and value != value):
        return set()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            with contextlib.suppress(json.JSONDecodeError):  # not JSON after all: one id
                value = json.loads(text)
    if isinstance(value, (list, tuple, set)):
        return {str(v) for v in value if v is not None and str(v) != ""}
    return {str(value)} if str(value) != "" else set()


def _matches(item: dict, golds: set[str]) -> set[str]:
    """Gold ids this retrieved chunk stands for (by id, source, file name or file stem)."""
    names = {str(item.get("id")), str(item.get("source"))}
    for n in list(names):
        names |= {Path(n).name, Path(n).stem}
    return golds & names


def gold_hits(
    retrieved: Sequence[dict] | None, golds: set[str], k: int
) -> tuple[float, float, bool]:
    """(recall@k, reciprocal rank, any gold in top k) for one example's ranked chunks.

    Ranks count chunks as retrieved (position 1 is the best chunk); only the first k are used.
    """
    found: set[str] = set()
    rr = 0.0
    for rank, item in enumerate(list(retrieved or [])[:k], start=1):
        hit = _matches(item, golds)
        if hit and rr == 0.0:
            rr = 1.0 / rank
        found |= hit
    return len(found) / len(golds), rr, bool(found)


def retrieval_metrics(records: list[dict], examples: dict[str, Any], k: int) -> dict:
    """recall@k, MRR, and accuracy given gold retrieved / not retrieved, over examples with gold.

    `records` are one variant's result lines (several per example with repeats: retrieval is
    per example, correctness is averaged over its repeats). `examples` maps id -> Example.
    Correctness is `scores["correct"]`; values are None when no example falls in a group.
    """
    per_example: dict[str, list[dict]] = {}
    for r in records:
        per_example.setdefault(r["id"], []).append(r)
    recalls, rrs = [], []
    given = {True: [], False: []}
    for ex_id, recs in per_example.items():
        example = examples.get(ex_id)
        golds = gold_ids(getattr(example, "gold", None)) if example is not None else set()
        if not golds:
            continue
        retrieved = next((r.get("retrieved") for r in recs if r.get("retrieved") is not None), None)
        recall, rr, hit = gold_hits(retrieved, golds, k)
        recalls.append(recall)
        rrs.append(rr)
        correct = [
            float(r["scores"]["correct"])
            for r in recs
            if (r.get("scores") or {}).get("correct") is not None
        ]
        if correct:
            given[hit].append(sum(correct) / len(correct))

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return {
        "k": k,
        "n": len(recalls),
        "recall_at_k": mean(recalls),
        "mrr": mean(rrs),
        "accuracy_gold_retrieved": {"value": mean(given[True]), "n": len(given[True])},
        "accuracy_gold_missed": {"value": mean(given[False]), "n": len(given[False])},
    }


__all__ = [
    "Retriever",
    "build_retriever",
    "chunk_text",
    "gold_hits",
    "gold_ids",
    "load_corpus",
    "retrieval_metrics",
    "validate_retrieval",
]
