"""Retrievers: what a rag variant calls per example (a built-in index, or the user's function)."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.calls._litellm import missing_credentials
from harness.errors import SuiteError
from harness.retrieve.corpus import Chunk, chunk_documents, load_corpus
from harness.retrieve.gold import gold_ids, matches_gold
from harness.retrieve.indexes import index_for, k_of
from harness.suite import Suite, Variant
from harness.suite.kinds import GOLD_METHOD

# ---------------------------------------------------------------- queries


@functools.lru_cache(maxsize=1)
def template_env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def query_fn(suite: Suite, variant: Variant) -> Callable[[Any], str]:
    """Example -> search query: the `query` template, or the input fields joined by newlines."""
    from jinja2 import TemplateError

    source = variant.retrieval.query if variant.retrieval else None
    if source is None:
        return lambda ex: "\n".join(str(v) for v in ex.inputs.values() if v is not None)
    key = ("variants", variant.index, "retrieval", "query")
    try:
        template = template_env().from_string(source)
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


class GoldRetriever(Retriever):
    """`method: gold`: each example's own gold passages (data.gold), in corpus order, up to k —
    what a perfect retriever would hand the model. It measures whether the knowledge fixes an
    answer, apart from whether a search finds it."""

    name = GOLD_METHOD

    def __init__(self, chunks: list[Chunk], k: int, fail: Callable[[str], SuiteError]):
        self.chunks, self.k, self._fail = chunks, k, fail
        self._names: set[str] = set()  # every name a gold id may give a document by
        for c in chunks:
            self._names |= matches_gold({"id": c.id, "source": c.source}, None)

    def retrieve(self, example) -> list[dict]:
        golds = gold_ids(getattr(example, "gold", None))
        unknown = sorted(golds - self._names)
        if unknown:
            # Handed an empty context, the example would read as "knowledge does not help".
            sources = list(dict.fromkeys(Path(str(c.source)).name for c in self.chunks))
            raise self._fail(
                f"example {example.id}: gold id {unknown[0]!r} names no document of the corpus "
                f"({len(sources)} documents"
                + (f", e.g. {sources[0]!r}" if sources else "")
                + ") — name each gold passage by its document's id, file name or file stem"
            )
        out: list[dict] = []
        for c in self.chunks:
            if len(out) == self.k:
                break
            item = {"text": c.text, "source": c.source, "id": c.id, "score": 1.0, "chunk": c.n}
            if matches_gold(item, golds):
                out.append(item)
        return out


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
        top = module_name.split(".")[0]
        if e.name and e.name != module_name and not module_name.startswith(e.name + "."):
            # The retriever's module was found; something it imports is missing.
            raise suite.fail(
                f"{module_name!r} imports {e.name!r}, which is not installed — install it "
                f"(pip install {e.name.split('.')[0]})",
                key,
            ) from None
        raise suite.fail(
            f"cannot import {module_name!r} ({e}) — put {module_name.replace('.', '/')}.py next to the "
            f"suite file (no {top!r} there) or install the package, and spell it as package.module:function",
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


def build_retriever(
    suite: Suite, variant: Variant, *, runs_dir: Path | str = "runs", say=None
) -> Retriever:
    """The retriever of a rag variant. Indexes are shared across variants with the same corpus;
    `say(text)` hears that one is being built (or loaded), with its size."""
    if variant.retriever:
        fn = import_retriever(suite, variant)
        key = ("variants", variant.index, "retriever")
        k = k_of(variant)
        return FunctionRetriever(
            fn, k, query_fn(suite, variant), variant.retriever, lambda msg: suite.fail(msg, key)
        )
    spec = variant.retrieval
    if spec is None:
        raise suite.fail(
            "a rag variant needs `retrieval:` or `retriever:`", ("variants", variant.index)
        )
    check_spec(suite, variant)
    if spec.method == "embedding":
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
    if spec.method == GOLD_METHOD:
        return GoldRetriever(chunks, spec.k, lambda msg: suite.fail(msg, ("data", "gold")))
    if say is not None:
        say(f"{variant.name}: {spec.method} index over {len(chunks):,} chunks…")
    index = index_for(chunks, spec, variant, Path(runs_dir))
    return IndexRetriever(chunks, index, spec.k, query_fn(suite, variant), f"{spec.method}")


def check_spec(suite: Suite, variant: Variant) -> None:
    spec = variant.retrieval
    base = ("variants", variant.index, "retrieval")
    if spec.chunk.overlap >= spec.chunk.size:
        raise suite.fail(
            f"overlap ({spec.chunk.overlap}) must be smaller than size ({spec.chunk.size}) — e.g. overlap: {spec.chunk.size // 8}",
            (*base, "chunk", "overlap"),
        )
    if spec.method == GOLD_METHOD and not suite.spec.data.gold:
        raise suite.fail(
            "method: gold hands each example its gold passages, named by `data.gold` — set "
            "data.gold to the column of gold passage ids, or choose method: bm25",
            (*base, "method"),
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
