"""`harness check`'s retrieval lines: corpora readable, retrievers importable, gold ids covered."""

from __future__ import annotations

from collections.abc import Sequence

from harness.errors import SuiteError, SuiteErrors
from harness.retrieve.corpus import Document, chunk_documents, load_corpus
from harness.retrieve.gold import gold_ids, matches_gold
from harness.retrieve.indexes import k_of
from harness.retrieve.retrievers import check_spec, import_retriever, query_fn, template_env
from harness.suite import Suite, Variant
from harness.suite.kinds import KINDS

# ---------------------------------------------------------------- harness check


def _check_query(suite: Suite, variant: Variant) -> None:
    """The query template compiles and uses only input fields (the target must not leak into it)."""
    from jinja2 import meta

    source = variant.retrieval.query if variant.retrieval else None
    if source is None:
        return
    query_fn(suite, variant)  # syntax errors, with the key
    inputs = suite.spec.data.inputs
    unknown = meta.find_undeclared_variables(template_env().parse(source)) - set(inputs)
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
        if not KINDS[variant.kind].retrieves:
            continue
        try:
            _check_query(suite, variant)
            spec = variant.retrieval
            k = k_of(variant)
            if variant.retriever:
                import_retriever(suite, variant)
                detail = f"your retriever {variant.retriever} (imported), k={k}"
            else:
                check_spec(suite, variant)
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
                    used |= meta.find_undeclared_variables(template_env().parse(source))
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
    missing = [(ex_id, g) for ex_id, g in wanted if not any(matches_gold(it, {g}) for it in items)]
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
