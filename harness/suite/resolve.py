"""Loading a suite: read the YAML, validate it as written, then resolve it.

`resolve` applies `defaults` and `extends`, makes paths absolute, and checks what only the whole
suite can tell (baseline exists, names are unique, each variant has what its kind needs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import SuiteError, SuiteErrors
from harness.suite._messages import validation_errors
from harness.suite._yaml import format_key, locate, read_yaml
from harness.suite.kinds import KINDS
from harness.suite.model import (
    DEFAULT_TIMEOUT_S,
    EXAMPLES,
    INHERITED,
    NET_MONTHLY_VALUE,
    Suite,
    SuiteFile,
    Variant,
    VariantSpec,
)
from harness.suite.secrets import malformed_refs, remember_literals


def load_suite(path: str | Path) -> Suite:
    """Read, validate and resolve a suite file. Raises SuiteError with file:line: key: message."""
    path = Path(path)
    raw, locations = read_yaml(path)
    remember_literals(raw)  # masked in every message from here on, whatever the path
    bad = malformed_refs(raw)
    if bad:
        raise SuiteErrors(
            [
                SuiteError(
                    f"{ref} is not an environment reference — write ${{env:NAME}} with NAME "
                    "a variable name (letters, digits, _; not starting with a digit)",
                    file=str(path),
                    key=format_key(key),
                    line=locate(locations, key)[0],
                )
                for key, ref in bad
            ]
        )
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as e:
        raise validation_errors(e, path, raw, locations) from None
    return resolve(path, raw, spec, locations)


def resolve(path: Path, raw: dict, spec: SuiteFile, locations) -> Suite:
    """Apply defaults/extends and whole-suite checks. `path` is shown in errors as the user gave it."""
    problems: list[SuiteError] = []

    def fail(msg: str, key: tuple):
        line, col = locate(locations, key)
        problems.append(SuiteError(msg, file=str(path), key=format_key(key), line=line, column=col))

    names: dict[str, int] = {}
    for i, v in enumerate(spec.variants):
        if v.name in names:
            fail(
                f"duplicate variant name {v.name!r} (also variants[{names[v.name]}]) — names must be unique",
                ("variants", i, "name"),
            )
        else:
            names[v.name] = i

    by_name = {v.name: v for v in spec.variants}
    resolved: list[Variant] = []
    for i, v in enumerate(spec.variants):
        chain = _extends_chain(v, by_name, i, fail)
        if chain is None:
            continue
        merged, kind = _merged(v, chain, spec)
        if not _variant_ok(kind, merged, i, spec, fail):
            continue
        resolved.append(_variant(v, kind, merged, i))

    _check_suite(spec, names, fail)

    output_schema = None
    if spec.output_schema:
        output_schema = _load_json_schema(path, spec.output_schema, locations, fail)

    if problems:
        raise SuiteErrors(problems)
    return Suite(
        path=path.resolve(),
        display_path=str(path),
        raw=raw,
        spec=spec,
        variants=resolved,
        output_schema=output_schema,
        locations=locations,
    )


def _merged(
    v: VariantSpec, chain: list[VariantSpec], spec: SuiteFile
) -> tuple[dict[str, Any], str]:
    """The variant's settings after defaults and its `extends` chain, and its kind."""
    merged: dict[str, Any] = {}
    for source in [spec.defaults, *reversed(chain)]:
        for key in INHERITED:
            val = getattr(source, key, None)
            if val is None:
                continue
            if key == "params" and merged.get("params"):
                merged["params"] = {**merged["params"], **val}
            else:
                merged[key] = val
    # Kind-specific settings come only from the variant chain, never from defaults.
    for key in ("retrieval", "retriever", "base_model", "training", "finetune", "forgetting"):
        for source in reversed(chain):
            val = getattr(source, key)
            if val is not None:
                merged[key] = val
    kind = (
        v.kind
        if "kind" in v.model_fields_set
        else next((c.kind for c in chain if "kind" in c.model_fields_set), "prompt")
    )
    return merged, kind


def _variant_ok(kind: str, merged: dict[str, Any], i: int, spec: SuiteFile, fail) -> bool:
    """Check what the variant's kind needs; False when it cannot be resolved at all."""
    ft = merged.get("finetune")
    if ft is not None and not _finetune_ok(spec, kind, merged, i, fail):
        return False
    if not merged.get("model") and ft is None:
        fail(
            "required — " + EXAMPLES["model"] + " (set it on the variant or in defaults)",
            ("variants", i, "model"),
        )
        return False
    if not merged.get("user"):
        fail(
            "required — " + EXAMPLES["user"] + " (set it on the variant or in defaults)",
            ("variants", i, "user"),
        )
        return False
    if KINDS[kind].retrieves and not (merged.get("retrieval") or merged.get("retriever")):
        fail(
            "a rag variant needs `retrieval:` or `retriever: package.module:function`",
            ("variants", i),
        )
    if not KINDS[kind].retrieves and (merged.get("retrieval") or merged.get("retriever")):
        fail("retrieval settings need `kind: rag`", ("variants", i, "kind"))
    # With `retriever:`, `retrieval:` may only tune k and query; the corpus is the function's.
    rspec = merged.get("retrieval")
    if merged.get("retriever") and rspec is not None and rspec.corpus is not None:
        fail(
            "`retrieval.corpus` is for built-in retrieval — with `retriever:` your function searches; "
            "keep only k/query under `retrieval:`",
            ("variants", i, "retrieval", "corpus"),
        )
    elif (
        KINDS[kind].retrieves
        and not merged.get("retriever")
        and rspec is not None
        and rspec.corpus is None
    ):
        fail(
            "required — files/globs (e.g. docs/*.md) or {path, text, id} of a data file; "
            "or set `retriever: package.module:function`",
            ("variants", i, "retrieval", "corpus"),
        )
    if KINDS[kind].trained and not merged.get("base_model") and ft is None:
        fail(
            "required for a fine-tuned variant — the model it was tuned from, e.g. openai/gpt-4o-mini",
            ("variants", i, "base_model"),
        )
    if not KINDS[kind].trained and (
        merged.get("training") or merged.get("base_model") or merged.get("forgetting")
    ):
        fail(
            "`training`/`base_model`/`forgetting` belong to `kind: fine-tuned` variants",
            ("variants", i, "kind"),
        )
    if merged.get("few_shot") and not spec.data.train:
        fail(
            "few_shot draws from the train split — add `data.train:` (never from test)",
            ("variants", i, "few_shot"),
        )
    rf = merged.get("response_format")
    if rf == "output_schema" and not spec.output_schema:
        fail(
            "response_format: output_schema needs a top-level `output_schema:` file",
            ("variants", i, "response_format"),
        )
    return True


def _finetune_ok(spec: SuiteFile, kind: str, merged: dict[str, Any], i: int, fail) -> bool:
    """A `finetune:` block trains the model, so the id and the cost come from its job."""
    ft = merged["finetune"]
    where = ("variants", i, "finetune")
    if spec.variants[i].model:
        fail(
            "the model id of a `finetune:` variant comes from its latest succeeded job — "
            "remove `model` (or remove `finetune` to evaluate a model trained elsewhere)",
            ("variants", i, "model"),
        )
        return False
    if not KINDS[kind].trained:
        fail("`finetune` trains a model — it belongs to `kind: fine-tuned` variants", where)
        return False
    if merged.get("training") is not None:
        fail(
            "`training` is the cost of a model trained elsewhere — with `finetune:` the cost "
            "comes from the job; remove `training`",
            ("variants", i, "training"),
        )
        return False
    base = ft.base_model or merged.get("base_model")
    if not base:
        fail(
            "required — the model to tune, e.g. base_model: openai/gpt-4o-mini-2024-07-18",
            (*where, "base_model"),
        )
        return False
    if ft.base_model and merged.get("base_model") and ft.base_model != merged["base_model"]:
        fail(
            f"finetune.base_model {ft.base_model!r} differs from base_model "
            f"{merged['base_model']!r} — keep one",
            (*where, "base_model"),
        )
        return False
    merged["base_model"] = base
    # The model id is the latest succeeded job's (harness.finetune.resolve); until then the
    # variant names its training, never a model someone typed.
    merged["model"] = f"finetune:{spec.variants[i].name}"
    return True


def _variant(v: VariantSpec, kind: str, merged: dict[str, Any], i: int) -> Variant:
    return Variant(
        name=v.name,
        kind=kind,
        model=merged["model"],
        system=merged.get("system"),
        user=merged["user"],
        params=dict(merged.get("params") or {}),
        api_base=merged.get("api_base"),
        response_format=merged.get("response_format"),
        repeats=merged.get("repeats") or 1,
        rate_limit=merged.get("rate_limit"),
        pricing=merged.get("pricing"),
        few_shot=merged.get("few_shot"),
        timeout=merged.get("timeout") or DEFAULT_TIMEOUT_S,
        retrieval=merged.get("retrieval"),
        retriever=merged.get("retriever"),
        base_model=merged.get("base_model"),
        training=merged.get("training"),
        finetune=merged.get("finetune"),
        forgetting=merged.get("forgetting"),
        index=i,
    )


def _check_suite(spec: SuiteFile, names: dict[str, int], fail) -> None:
    """What only the whole suite can tell: baseline, labels, target, guarded variants."""
    if spec.baseline is not None and spec.baseline not in names:
        fail(f"unknown variant {spec.baseline!r} — choose one of {list(names)}", ("baseline",))
    if spec.task == "classification" and spec.labels is None:
        fail("required for classification — `labels: from-data` or a list of labels", ("labels",))
    if spec.task != "generation" and not spec.data.target:
        fail(
            f"required for task {spec.task} — the field holding the expected answer",
            ("data", "target"),
        )
    _check_guards(spec, names, fail)
    _check_value(spec, fail)


def _check_guards(spec: SuiteFile, names: dict[str, int], fail) -> None:
    """Each guard entry names known variants, never a variant against itself; the family's
    settings (correction, sequential) are one choice, so every entry must agree."""
    listed = isinstance(spec.guard, list)
    guards = (spec.guard if listed else [spec.guard]) if spec.guard else []
    suite_baseline = spec.baseline or spec.variants[0].name
    for i, g in enumerate(guards):
        at = ("guard", i) if listed else ("guard",)
        baseline = g.baseline or suite_baseline
        if g.baseline is not None and g.baseline not in names:
            fail(f"unknown variant {g.baseline!r} — choose one of {list(names)}", (*at, "baseline"))
        if g.candidate is not None and g.applies_to is not None:
            fail("set `candidate` or `applies_to`, not both", (*at, "candidate"))
        guarded = [((*at, "candidate"), g.candidate)] if g.candidate is not None else []
        guarded += [((*at, "applies_to", j), n) for j, n in enumerate(g.applies_to or [])]
        for key, name in guarded:
            if name not in names:
                fail(f"unknown variant {name!r} — choose one of {list(names)}", key)
            elif name == baseline:
                fail("the baseline cannot be guarded against itself", key)
        if listed and g.candidate is None and g.applies_to is None:
            fail("a hypothesis in a list names its `candidate` (a variant)", at)
        if g.metric == NET_MONTHLY_VALUE and (spec.value is None or spec.volume is None):
            fail(
                "net_monthly_value needs `value: {error_cost_usd: ...}` and "
                "`volume: {monthly_requests: ...}` — the dollars it compares come from them",
                (*at, "metric"),
            )
        for field in ("correction", "sequential"):
            if getattr(g, field) != getattr(guards[0], field):
                fail(
                    f"`{field}` applies to the whole family of hypotheses — give every entry the "
                    f"same value as the first ({getattr(guards[0], field)!r})",
                    (*at, field),
                )


def _check_value(spec: SuiteFile, fail) -> None:
    if spec.value is None:
        return
    if spec.volume is None:
        fail("`value:` prices errors per month — set `volume: {monthly_requests: N}`", ("value",))
    if spec.task == "generation":
        fail(
            "`value:` needs answers that are right or wrong (classification or extraction)",
            ("value",),
        )
    if spec.value.per_class is not None:
        if spec.task != "classification":
            fail("per_class is for classification suites", ("value", "per_class"))
        elif isinstance(spec.labels, list):
            for label in spec.value.per_class:
                if label not in spec.labels:
                    fail(
                        f"unknown label {label!r} — choose one of {spec.labels}",
                        ("value", "per_class", label),
                    )


def _extends_chain(
    v: VariantSpec, by_name: dict[str, VariantSpec], i: int, fail
) -> list[VariantSpec] | None:
    """The variant followed by its ancestors (nearest first)."""
    chain = [v]
    seen = {v.name}
    cur = v
    while cur.extends:
        parent = by_name.get(cur.extends)
        if parent is None:
            fail(
                f"unknown variant {cur.extends!r} — choose one of {list(by_name)}",
                ("variants", i, "extends"),
            )
            return None
        if parent.name in seen:
            fail(
                f"`extends` cycle: {' -> '.join([*[c.name for c in chain], parent.name])}",
                ("variants", i, "extends"),
            )
            return None
        chain.append(parent)
        seen.add(parent.name)
        cur = parent
    return chain


def _load_json_schema(path: Path, rel: str, locations, fail) -> dict | None:
    import jsonschema

    p = Path(rel) if Path(rel).is_absolute() else path.parent / rel
    if not p.exists():
        fail(
            f"file not found: {p} — check the path (relative to the suite file)", ("output_schema",)
        )
        return None
    try:
        schema = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        fail(f"{p} is not UTF-8 — save it as UTF-8", ("output_schema",))
        return None
    except json.JSONDecodeError as e:
        fail(f"{p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}", ("output_schema",))
        return None
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(x) for x in e.absolute_path) or "(root)"
        fail(f"{p}: not a valid JSON Schema at {where}: {e.message}", ("output_schema",))
        return None
    return schema
