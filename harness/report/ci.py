"""CI outputs of a decided run: JUnit XML and the GitHub Actions step summary.

Each reads only summary.json, so any CI system can gate on a run after the fact too.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.decide.costs import cost_per_request
from harness.decide.protocol import amendment_lines
from harness.stats.numbers import exit_text, money, verdict_label, with_ci


def junit_xml(summary: dict[str, Any]) -> ET.ElementTree:
    """One testcase per guarded variant; a failure carries the verdict sentence.

    fail / abandon / moved goalposts → <failure>; provider errors → <error>; inconclusive →
    <failure>, or <skipped> when the run allowed inconclusive verdicts.
    """
    guard = summary.get("guard") or {}
    verdicts = guard.get("verdicts") or {}
    suite_name = summary.get("suite", "harness")
    ts = ET.Element("testsuite", name=suite_name)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, v in verdicts.items():
        case = ET.SubElement(ts, "testcase", classname=f"harness.{suite_name}", name=name)
        counts["tests"] += 1
        # The label first: a pass under moved goalposts reads as flagged here too.
        msg = f"{verdict_label(v)}: {v.get('sentence', '')}"
        flags = v.get("flags") or []
        if "error_rate" in flags:
            ET.SubElement(case, "error", message=msg, type="provider_errors").text = msg
            counts["errors"] += 1
        elif v["verdict"] in ("fail", "abandon") or "moved_goalposts" in flags:
            kind = "moved_goalposts" if v["verdict"] == "pass" else v["verdict"]
            ET.SubElement(case, "failure", message=msg, type=kind).text = msg
            counts["failures"] += 1
        elif v["verdict"] == "inconclusive":
            if guard.get("allow_inconclusive"):
                ET.SubElement(case, "skipped", message=msg)
                counts["skipped"] += 1
            else:
                ET.SubElement(case, "failure", message=msg, type="inconclusive").text = msg
                counts["failures"] += 1
        else:
            ET.SubElement(case, "system-out").text = msg
    for k, n in counts.items():
        ts.set(k, str(n))
    root = ET.Element("testsuites", name="harness", **{k: str(n) for k, n in counts.items()})
    root.append(ts)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(summary).write(path, encoding="utf-8", xml_declaration=True)
    return path


_ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "abandon": "🛑"}


def comment_marker(suite: Any) -> str:
    """The hidden line that makes a PR comment sticky: the action updates the comment holding it."""
    return f"<!-- harness-pr-comment:{suite} -->"


def markdown(summary: dict[str, Any]) -> str:
    """The verdict table of a run for a pull request or a CI job page: each guarded variant's
    paired Δ with CI, its cost per request against the baseline's, break-even and the ledger."""
    guard = summary.get("guard") or {}
    lines = [
        f"### harness: {summary.get('suite')} (run {summary.get('run_id')}) — "
        f"{exit_text(summary.get('exit_code'))}",
        "",
    ]
    if not guard:
        lines.append("No guard declared: nothing to gate.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"Hypothesis: {guard.get('test')} on `{guard.get('metric')}`, margin {guard.get('margin')}, "
        f"confidence {guard.get('confidence')} (fingerprint `{guard.get('fingerprint')}`)"
    )
    lines += [
        "",
        "| variant | verdict | Δ vs baseline [CI] | cost / request | break-even | ledger |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    variants = summary.get("variants") or {}
    base_cpr = cost_per_request(variants.get(summary.get("baseline")) or {})
    for name, v in (guard.get("verdicts") or {}).items():
        icon = "🚩" if v.get("flags") else _ICONS.get(v["verdict"], "")
        d = v.get("delta") or {}
        cpr = cost_per_request(variants.get(name) or {})
        cost = "–"
        if cpr is not None:
            cost = money(cpr)
            if base_cpr:
                cost += f" ({cpr / base_cpr:.2f}× {money(base_cpr)})"
        be = v.get("break_even")
        if be:
            even = f"{be['break_even_requests']:,.0f} requests"
            if be.get("payback_months") is not None:
                even += f" ({be['payback_months']:.1f} months)"
        elif cpr is not None and base_cpr and cpr > base_cpr:
            even = "none: costs more per request"
        else:
            even = "–"
        led = v.get("ledger") or {}
        ledger = (
            f"{led.get('iterations')} iteration(s), {money(led.get('spent_usd'))} spent"
            if led
            else "–"
        )
        cells = [
            name,
            f"{icon} {verdict_label(v)}",
            with_ci(d, d.get("metric") or guard.get("metric") or "", delta=True),
            cost,
            even,
            ledger,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    for name, v in (guard.get("verdicts") or {}).items():
        lines.append(f"- **{name}**: {_cell(v.get('sentence', ''))}")
    moved = guard.get("moved_goalposts")
    if moved:
        lines += ["", f"**Moved goalposts:** {'; '.join(moved['changes'])}"]
    lines += protocol_lines(summary)
    return "\n".join(lines) + "\n"


def protocol_lines(summary: dict[str, Any]) -> list[str]:
    """The run against its registered protocol: each amendment and stricter change, old → new."""
    shown = amendment_lines(summary.get("protocol"))
    return ["", "**Protocol:**", *(f"- {_cell(line)}" for line in shown)] if shown else []


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pr_comment(summary: dict[str, Any]) -> str:
    """`harness run --pr-comment FILE`: the verdict table under the sticky marker."""
    return comment_marker(summary.get("suite")) + "\n" + markdown(summary)


def write_pr_comment(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pr_comment(summary), encoding="utf-8")
    return path


def append_step_summary(summary: dict[str, Any], env: dict[str, str] | None = None) -> Path | None:
    """Append the markdown to $GITHUB_STEP_SUMMARY when running in GitHub Actions."""
    env = os.environ if env is None else env
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown(summary) + "\n")
    return path
