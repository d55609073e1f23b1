"""CI outputs of a decided run: JUnit XML, the PR comment and the GitHub Actions step summary.

Each reads only summary.json (as a typed harness.results.Summary), so any CI system can gate
on a run after the fact too.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.decide.costs import cost_per_request
from harness.decide.protocol import amendment_lines
from harness.decide.sections import decision_lines, guard_fingerprint, hypothesis_lines
from harness.results import Summary, VariantFigures, as_summary
from harness.stats.numbers import exit_text, money, verdict_label, with_ci


def junit_xml(summary: dict[str, Any] | Summary) -> ET.ElementTree:
    """One testcase per hypothesis (by its key); a failure carries the verdict sentence.

    fail / abandon / moved goalposts / amended protocol → <failure>; provider errors → <error>; inconclusive →
    <failure>, or <skipped> when the run allowed inconclusive verdicts.
    """
    s = as_summary(summary)
    guard = s.guard
    verdicts = guard.verdicts if guard is not None else {}
    ts = ET.Element("testsuite", name=s.suite)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, v in verdicts.items():
        case = ET.SubElement(ts, "testcase", classname=f"harness.{s.suite}", name=name)
        counts["tests"] += 1
        # The label first: a pass under moved goalposts reads as flagged here too.
        msg = f"{verdict_label(v.model_dump())}: {v.sentence}"
        if "error_rate" in v.flags:
            ET.SubElement(case, "error", message=msg, type="provider_errors").text = msg
            counts["errors"] += 1
        elif v.verdict in ("fail", "abandon") or {"moved_goalposts", "amended"} & set(v.flags):
            # A flagged pass exits 1, so CI must show it failed too.
            kind: str = v.verdict
            if v.verdict == "pass":
                kind = "moved_goalposts" if "moved_goalposts" in v.flags else "amended"
            ET.SubElement(case, "failure", message=msg, type=kind).text = msg
            counts["failures"] += 1
        elif v.verdict == "inconclusive":
            if guard is not None and guard.allow_inconclusive:
                ET.SubElement(case, "skipped", message=msg)
                counts["skipped"] += 1
            else:
                ET.SubElement(case, "failure", message=msg, type="inconclusive").text = msg
                counts["failures"] += 1
        else:
            ET.SubElement(case, "system-out").text = msg
    for k, n in counts.items():
        ts.set(k, str(n))
    root = ET.Element("testsuites", {"name": "harness", **{k: str(n) for k, n in counts.items()}})
    root.append(ts)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(summary: dict[str, Any] | Summary, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(summary).write(path, encoding="utf-8", xml_declaration=True)
    return path


_ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "abandon": "🛑"}


def comment_marker(suite: Any) -> str:
    """The hidden line that makes a PR comment sticky: the action updates the comment holding it."""
    return f"<!-- harness-pr-comment:{suite} -->"


def markdown(summary: dict[str, Any] | Summary) -> str:
    """The decision of a run for a pull request or a CI job page: one line per decision, the
    pre-registered hypotheses, then per hypothesis its paired Δ with CI, the candidate's cost
    per request against its baseline's, break-even and the ledger."""
    s = as_summary(summary)
    lines = [f"### harness: {s.suite} (run {s.run_id}) — {exit_text(s.exit_code)}", ""]
    if s.guard is None:
        lines.append("No guard declared: nothing to gate.")
        return "\n".join(lines) + "\n"
    lines += decision_lines(s) + [""]
    lines.append(
        f"Hypotheses (pre-registered, fingerprint `{guard_fingerprint(s)}`, "
        f"correction {s.guard.correction or 'holm'}):"
    )
    lines += hypothesis_lines(s)
    lines += [
        "",
        "| hypothesis | verdict | Δ vs baseline [CI] | cost / request | break-even | ledger |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, v in s.guard.verdicts.items():
        h = v.hypothesis or s.hypothesis(key)
        raw = v.model_dump()
        icon = "🚩" if v.flags else _ICONS.get(v.verdict, "")
        candidate = s.variants.get(h.candidate if h else key)
        base = s.variants.get(h.baseline if h else s.baseline or "")
        led = v.ledger
        ledger = (
            f"{led.get('iterations')} iteration(s), {money(led.get('spent_usd'))} spent"
            if led
            else "–"
        )
        cells = [
            key,
            f"{icon} {verdict_label(raw)}",
            with_ci(raw["delta"], v.delta.metric or (h.metric if h else ""), delta=True),
            _cost_cell(candidate, base),
            _break_even_cell(raw.get("break_even"), candidate, base, s.value is not None),
            ledger,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    for key, v in s.guard.verdicts.items():
        lines.append(f"- **{key}**: {_cell(v.sentence)}")
    moved = s.guard.moved_goalposts
    if moved:
        lines += ["", f"**Moved goalposts:** {'; '.join(moved['changes'])}"]
    lines += protocol_lines(summary)
    return "\n".join(lines) + "\n"


def _cost_cell(candidate: VariantFigures | None, base: VariantFigures | None) -> str:
    cpr, base_cpr = cost_per_request(candidate), cost_per_request(base)
    if cpr is None:
        # Every call failed: no answer, so no cost figure (never $0, never a saving).
        return "unknown (no priced call)" if candidate and candidate.answered else "–"
    text = money(cpr)
    if base_cpr:
        text += f" ({cpr / base_cpr:.2f}× {money(base_cpr)})"
    return text


def _break_even_cell(
    be: Any, candidate: VariantFigures | None, base: VariantFigures | None, valued: bool
) -> str:
    """When the training pays back; why there is none (no training, or dearer per request)."""
    if isinstance(be, dict) and be.get("break_even_requests") is not None:
        text = f"{be['break_even_requests']:,.0f} requests"
        if be.get("payback_months") is not None:
            text += f" ({be['payback_months']:.1f} months)"
        return text + (", error cost counted" if be.get("counts_error_cost") else ", API cost only")
    cpr, base_cpr = cost_per_request(candidate), cost_per_request(base)
    if candidate is None or candidate.training is None or not candidate.training.cost_usd:
        return "none needed: no training cost"
    if cpr is not None and base_cpr and cpr > base_cpr:
        return "none: costs more per request"
    if valued and cpr is not None:
        return "none: no saving per request once errors are priced"
    return "–"


def protocol_lines(summary: dict[str, Any] | Summary) -> list[str]:
    """The run against its registered protocol: each amendment and stricter change, old → new."""
    protocol = (
        summary.get("protocol") if isinstance(summary, dict) else getattr(summary, "protocol", None)
    )
    shown = amendment_lines(protocol)
    return ["", "**Protocol:**", *(f"- {_cell(line)}" for line in shown)] if shown else []


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pr_comment(summary: dict[str, Any] | Summary) -> str:
    """`harness run --pr-comment FILE`: the decision and verdict table under the sticky marker."""
    return comment_marker(as_summary(summary).suite) + "\n" + markdown(summary)


def write_pr_comment(summary: dict[str, Any] | Summary, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pr_comment(summary), encoding="utf-8")
    return path


def append_step_summary(
    summary: dict[str, Any] | Summary, env: Mapping[str, str] | None = None
) -> Path | None:
    """Append the markdown to $GITHUB_STEP_SUMMARY when running in GitHub Actions."""
    target = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown(summary) + "\n")
    return path
