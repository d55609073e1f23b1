"""`harness diagnose`: which bottleneck the run's own evidence shows, so which approach.

`diagnose(run, variant)` sorts each wrong example of a variant (default: the baseline) into one
cause by the precedence in harness.diagnose.causes, gives each cause's share of the errors with
a Wilson interval, and fills in the article's decision table (harness.diagnose.approaches).
`write(run, diagnosis)` saves diagnosis.json and the label-review CSV in the run directory.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from harness.diagnose.approaches import SuiteFacts, approach_rows, recommendation
from harness.diagnose.causes import (
    CAUSES,
    CONFIDENCE,
    Evidence,
    errors_of,
    gather,
    shares,
    sort_example,
)
from harness.diagnose.evidence import Calls, flips, variants_of
from harness.errors import SuiteError
from harness.rundir.reader import RunFiles

DIAGNOSIS_FILE = "diagnosis.json"
LABEL_REVIEW_FILE = "label_review.csv"
SCHEMA_VERSION = 1


def diagnose(
    run: RunFiles,
    variant: str | None = None,
    *,
    probes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The diagnosis of `variant` as diagnosis.json holds it.

    probes: {"repeats" | "gold" | "stronger": {example id: Calls}, "stronger_model": MODEL}, the
    answers of probes already run (harness.run.probes) on the wrong examples."""
    name = variant or str(run.summary.get("baseline") or (run.variants or [""])[0])
    task = str(run.summary.get("task") or run.suite.get("task") or "")
    if name not in run.variants:
        raise SuiteError(f"unknown variant {name!r} in {run.path} — choose one of {run.variants}")
    variants = variants_of(run)
    if name not in variants:
        raise SuiteError(
            f"{name!r} has no scored records in {run.path}/results/{name}.jsonl — finish the "
            f"run with `harness run SUITE.yaml --resume`, or pass --variant with one of "
            f"{list(variants)}"
        )
    ev = gather(variants, name, task)
    _add_probes(ev, probes or {})
    d = ev.diagnosed
    rows = [sort_example(ev, ex) for ex in errors_of(d)]
    cause_shares = shares(ev, rows)
    doubts = [r for r in rows if r.cause == "label_doubt"]
    csv_path = str(run.path / LABEL_REVIEW_FILE) if doubts else None
    table = approach_rows(ev, cause_shares, csv_path, _facts(run, name))
    best = recommendation(table)
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": run.suite_name,
        "run_id": str(run.summary.get("run_id", run.path.name)),
        "variant": name,
        "model": d.model,
        "is_baseline": name == run.summary.get("baseline"),
        "n_examples": len(d.calls),
        "n_errors": len(rows),
        "confidence": CONFIDENCE,
        "precedence": [c.key for c in CAUSES],
        "evidence": {
            "same_model": [v.name for v in ev.same_model],
            "rag": [v.name for v in ev.rag],
            "stronger": [v.name for v in ev.stronger],
            "strongest": [v.name for v in ev.strongest],
            "repeats": d.repeats,
            # Per other variant: the diagnosed one's wrong examples it gets right (fixes) and
            # its right ones it gets wrong (breaks).
            "flips": {
                v.name: dict(zip(("fixes", "breaks"), flips(d, v), strict=True))
                for v in variants.values()
                if v.name != name
            },
            "probes": sorted(k for k in ("repeats", "gold", "stronger") if k in (probes or {})),
        },
        "causes": [s.as_dict() for s in cause_shares],
        "approaches": table,
        "recommendation": best["approach"] if best else None,
        "label_review": csv_path,
        "examples": [
            {"id": r.id, "cause": r.cause, "fixed_by": r.fixed_by}
            | ({"suggested": r.suggested} if r.cause == "label_doubt" else {})
            for r in rows
        ],
    }


def _facts(run: RunFiles, name: str) -> SuiteFacts:
    declared = [m for m in (run.summary.get("metrics") or []) if isinstance(m, str)]
    metric = str((run.summary.get("hypothesis") or {}).get("metric") or "")
    if metric not in declared:  # no guard, a list of them, or net_monthly_value
        metric = "accuracy" if "accuracy" in declared or not declared else declared[0]
    inputs = (run.suite.get("data") or {}).get("input") or "text"
    return SuiteFacts(
        metric=metric,
        schema=bool(run.suite.get("output_schema")),
        input=str(inputs if isinstance(inputs, str) else inputs[0]),
        names=frozenset(run.variants),
        train=bool((run.suite.get("data") or {}).get("train")),
        constrained=bool(_setting(run, name, "response_format")),
        labels=tuple(str(label) for label in run.labels or ()),
    )


def _setting(run: RunFiles, name: str, key: str) -> Any:
    """A variant's setting as the suite resolves it: its own, an `extends` ancestor's, or the
    defaults'."""
    seen: set[str] = set()
    spec = run.variant_spec(name)
    while spec and spec.get("name") not in seen:
        if spec.get(key) is not None:
            return spec[key]
        seen.add(str(spec.get("name")))
        spec = run.variant_spec(str(spec["extends"])) if spec.get("extends") else {}
    return (run.suite.get("defaults") or {}).get(key)


def _add_probes(ev: Evidence, probes: dict[str, Any]) -> None:
    ev.repeats_probe = probes.get("repeats")
    ev.gold_probe = probes.get("gold")
    ev.stronger_probe = probes.get("stronger")
    ev.stronger_probe_model = probes.get("stronger_model")


def write(run: RunFiles, diagnosis: dict[str, Any]) -> Path:
    """diagnosis.json (and label_review.csv when some labels are in doubt) in the run dir."""
    path = run.path / DIAGNOSIS_FILE
    path.write_text(json.dumps(diagnosis, indent=2, default=str) + "\n", encoding="utf-8")
    doubts = [e for e in diagnosis["examples"] if e["cause"] == "label_doubt"]
    review = run.path / LABEL_REVIEW_FILE
    if doubts:
        with open(review, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            # `corrected` is the user's column: the right label, or empty to keep the current one.
            w.writerow(["id", "input", "label", "suggested", "agreed_by", "corrected"])
            agreed = "+".join(diagnosis["evidence"]["strongest"])
            for e in doubts:
                ex = run.examples.get(e["id"]) or {}
                w.writerow(
                    [
                        e["id"],
                        _cell(ex.get("input")),
                        _cell(ex.get("expected")),
                        _cell(e["suggested"]),
                        agreed,
                        "",
                    ]
                )
    elif review.exists():
        review.unlink()  # an earlier diagnosis's list no longer applies
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def read(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's diagnosis.json, or None when there is none (or it no longer parses)."""
    path = Path(run_dir) / DIAGNOSIS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["DIAGNOSIS_FILE", "Calls", "diagnose", "read", "write"]
