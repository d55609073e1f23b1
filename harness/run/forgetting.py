"""The forgetting check: a trained variant and its base on an out-of-domain suite.

`forgetting: {suite: general.yaml, margin: 0.02}` on a fine-tuned variant runs that suite's
baseline templates twice — as the base model and as the trained model, each where the variant
calls it (api_base, params) — and nothing else of that suite, under a non-inferiority guard at
`margin`. The verdict and its interval are recorded in the main run's summary (`forgetting`),
shown as a note, join the exit code (named as its cause), and a variant that did not pass it
is not an honest pass in the ledger: a trained model that lost what it could do elsewhere is
not a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.score.registry import validate_suite
from harness.stats.numbers import signed, with_ci
from harness.suite import Suite, Variant, load_suite
from harness.suite.model import SuiteFile
from harness.suite.resolve import resolve

if TYPE_CHECKING:
    from harness.run.conclude import RunOutcome

BASE, TRAINED = "base", "trained"


def forgetting_suite(suite: Suite, variant: Variant) -> Suite:
    """The out-of-domain suite with two variants (base, trained) and a non-inferiority guard."""
    f = variant.forgetting
    general = load_suite(suite.resolve_path(f.suite))
    metric = f.metric or (general.guards[0].metric if general.guards else None)
    metric = metric or _first_metric(general)
    where = {"api_base": variant.api_base} if variant.api_base else {}
    raw = {k: v for k, v in general.raw.items() if k not in ("guard", "volume")}
    raw["name"] = f"{general.name}.forgetting"
    # The baseline's own entry, copied: only base and trained are called (the suite's other
    # variants would double the calls and answer nothing about forgetting). An entry that
    # extends others keeps those it extends (they are defined, not run: see `_chain`).
    entries = {v.get("name"): v for v in general.raw["variants"] if isinstance(v, dict)}
    own = {k: v for k, v in entries[general.baseline].items() if k not in ("name", "kind")}
    raw["variants"] = [
        {**own, "name": BASE, "model": variant.base_model, **where},
        {
            **own,
            "name": TRAINED,
            "kind": "fine-tuned",
            "model": variant.model,
            "base_model": variant.base_model,
            **where,
        },
    ]
    if own.get("extends"):
        raw["variants"] = _chain(entries, own["extends"]) + raw["variants"]
    raw["baseline"] = BASE
    raw["guard"] = {
        "metric": metric,
        "test": "non-inferiority",
        "margin": f.margin,
        "applies_to": [TRAINED],
    }
    spec = SuiteFile.model_validate(raw)
    return validate_suite(resolve(general.path, raw, spec, {}))


def _chain(entries: dict, name: str) -> list[dict]:
    """The entries `name` extends, in order (each defined before what extends it)."""
    out: list[dict] = []
    while name and name in entries and all(e.get("name") != name for e in out):
        out.insert(0, entries[name])
        name = entries[name].get("extends")
    return out


def _first_metric(suite: Suite) -> str:
    first = suite.spec.metrics[0]
    return first if isinstance(first, str) else next(iter(first))


def check_forgetting(
    suite: Suite, selected: list[Variant], run: Callable[[Suite], Any]
) -> dict[str, dict[str, Any]]:
    """{variant: {suite, run_id, metric, margin, verdict, sentence, delta}} for each selected
    variant with `forgetting:`; `run(suite)` runs the derived suite (harness.run.pipeline)."""
    out: dict[str, dict[str, Any]] = {}
    for v in selected:
        if v.forgetting is None:
            continue
        derived = forgetting_suite(suite, v)
        outcome = run(derived)
        verdict = outcome.summary["guard"]["verdicts"][TRAINED]
        guard = derived.guards[0]
        delta = (verdict.get("delta") or {}).get("value")
        interval = with_ci(verdict.get("delta"), guard.metric, delta=True)
        out[v.name] = {
            "suite": v.forgetting.suite,
            "run_id": outcome.run_id,
            "metric": guard.metric,
            "margin": guard.margin,
            "verdict": verdict["verdict"],
            "delta": delta,
            "ci_low": (verdict.get("delta") or {}).get("ci_low"),
            "ci_high": (verdict.get("delta") or {}).get("ci_high"),
            "note": (
                f"forgetting: {v.name} vs its base {v.base_model} on {derived.name} "
                f"({guard.metric}, no worse than {signed(-guard.margin, guard.metric, unit=True)}): "
                f"{verdict['verdict']} — Δ "
                + (interval if delta is not None else "—")
                + f" (run {outcome.run_id})"
            ),
        }
    return out


def record_forgetting(outcome: RunOutcome, found: dict[str, dict[str, Any]]) -> None:
    """The forgetting checks in the run's summary and notes; a verdict other than pass makes
    the run's exit code 1 and the ledger's pass not an honest one."""
    if not found:
        return
    outcome.summary["forgetting"] = found
    outcome.summary.setdefault("notes", []).extend(f["note"] for f in found.values())
    failed = {name: f for name, f in found.items() if f["verdict"] != "pass"}
    entry = (outcome.summary.get("ledger_entry") or {}).get("variants") or {}
    for name, f in failed.items():
        # A pass that forgot what the base could do elsewhere is not an honest pass.
        if name in entry:
            entry[name]["forgetting"] = f["verdict"]
            if entry[name].get("verdict") == "pass":
                entry[name]["honest_pass"] = False
    if failed:
        outcome.exit_code = max(outcome.exit_code, 1)
        outcome.summary["exit_code"] = outcome.exit_code
        outcome.summary["notes"].append(
            f"exit {outcome.exit_code}: the forgetting check of "
            + ", ".join(f"{name} ({f['verdict']})" for name, f in failed.items())
            + " did not pass — a trained model that lost what its base could do elsewhere "
            "is not a pass"
        )
