"""The diagnosis in words: the rows the terminal and the report both show (from diagnosis.json)."""

from __future__ import annotations

from typing import Any

from harness.diagnose.approaches import FIXERS
from harness.diagnose.causes import GOLD_PROBE, STRONGER_PROBE

NOT_MEASURED = "not measured"
# The causes a variant added by a suite edit measures: those other variants show.
MEASURED_BY_EDIT = set(FIXERS)


def pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def share_text(row: dict[str, Any]) -> str:
    """ "36% [16%, 61%]" (count in the errors), or "not measured" — never 0% without evidence."""
    if not row.get("measured"):
        return NOT_MEASURED
    if row.get("share") is None:
        return "–"
    return f"{pct(row['share'])} [{pct(row['ci_low'])}, {pct(row['ci_high'])}]"


def headline(d: dict[str, Any]) -> str:
    role = "baseline, " if d.get("is_baseline") else ""
    return (
        f"{d['variant']} ({role}{d['model']}): {d['n_errors']} of {d['n_examples']} examples "
        "wrong or failed; each counted once, by precedence "
        + " > ".join(c.replace("_", " ") for c in d["precedence"])
    )


def cause_rows(d: dict[str, Any]) -> list[list[str]]:
    """[cause, errors, share [CI], evidence] per cause."""
    by_cause: dict[str, list[str]] = {}
    for e in d["examples"]:
        if e["cause"] not in FIXERS:
            continue
        # The variants that are this cause's evidence (a stronger model also fixes what
        # few-shot fixes, but is no evidence that prompting does), and its probes.
        evidence = set(d["evidence"].get(FIXERS[e["cause"]]) or [])
        for name in e["fixed_by"]:
            if name in evidence or _probe_of(e["cause"], name):
                by_cause.setdefault(e["cause"], []).append(name)
    out = []
    for c in d["causes"]:
        if not c["measured"]:
            out.append([c["title"], "–", NOT_MEASURED, c["why_not"] or ""])
            continue
        fixers = sorted(set(by_cause.get(c["cause"], [])))
        note = f"fixed by {', '.join(fixers)}" if fixers else c["meaning"]
        if c["cause"] == "label_doubt" and c["count"]:
            note = f"see {d['label_review']}"
        out.append([c["title"], str(c["count"]), share_text(c), note])
    return out


def _probe_of(cause: str, fixer: str) -> bool:
    """Whether `fixer` is the label of a probe that measures `cause`."""
    if cause == "knowledge":
        return fixer == GOLD_PROBE
    return cause == "capability" and fixer.startswith(STRONGER_PROBE)


def recommendation_text(d: dict[str, Any]) -> str:
    if d["n_errors"] == 0:
        return f"Recommendation: none needed — {d['variant']} got every example right."
    best = next((a for a in d["approaches"] if a["approach"] == d["recommendation"]), None)
    caveats = [a["caveat"] for a in d["approaches"] if a.get("caveat")]
    if best is None:
        shown = f" ({'; '.join(caveats)}: no evidence that it helps)" if caveats else ""
        unmeasured = any(not c["measured"] for c in d["causes"])
        out = f"Recommendation: nothing in this run is shown to fix its errors{shown}" + (
            " — add the variants below to measure the causes marked not measured."
            if unmeasured
            else "."
        )
        failed = next((c["count"] for c in d["causes"] if c["cause"] == "failed"), 0)
        if failed:
            out += (
                f" {failed} of the {d['n_errors']} errors are failed calls (no answer came back): "
                f"look at the errors in results/{d['variant']}.jsonl (a rate limit, a timeout), "
                "then `harness run SUITE.yaml --resume` retries them."
            )
        return out
    caveat = f" Caveat: {best['caveat']}." if best.get("caveat") else ""
    return (
        f"Recommendation: {best['title']} — addresses {share_text(best)} of the errors "
        f"({best['investment']}); {best['advice']}.{caveat}"
    )


def approach_rows(d: dict[str, Any]) -> list[list[str]]:
    """[approach, addresses, investment, don't] per approach of the article's table."""
    out = []
    for a in d["approaches"]:
        addresses = share_text(a)
        if a["measured"] and a["not_measured"]:
            addresses += " + " + ", ".join(a["not_measured"]) + " not measured"
        if a.get("doubtful"):
            addresses += f" ({a['doubtful']} in doubt)"
        out.append([a["title"], addresses, a["investment"], a["dont"]])
    return out


def text(d: dict[str, Any]) -> str:
    """The terminal's rendering."""
    lines = [headline(d), ""]
    lines += _aligned(["cause", "errors", "share [95% CI]", "evidence"], cause_rows(d))
    lines += ["", recommendation_text(d), "", "The decision table for this task:"]
    lines += _aligned(["approach", "addresses", "investment", "don't"], approach_rows(d))
    # An approach with errors, or whose edit would measure one of its unmeasured causes (a
    # fine-tuned variant measures no inconsistency: repeats do).
    edits = [
        a
        for a in d["approaches"]
        if a["suite_edit"] and (a["count"] or set(a["not_measured"]) & MEASURED_BY_EDIT)
    ]
    if edits:
        lines += [
            "",
            "Suite edits that would test it (append to `variants:` and to `guard:`, written as a "
            "list; then `harness run`):",
        ]
        for a in edits:
            unmeasured = (
                "not measured"
                if not a["measured"]
                else f"{', '.join(a['not_measured'])} not measured"
            )
            why = a["advice"] if a["count"] else f"{unmeasured} — this would measure it"
            lines.append(f"  # {a['title']}: {why}")
            lines += ["  " + line for line in a["suite_edit"].splitlines()]
    return "\n".join(lines)


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(r: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]

    return [line(header).rstrip(), *(line(r).rstrip() for r in rows)]
