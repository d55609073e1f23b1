"""CI outputs of a decided run: JUnit XML and the GitHub Actions step summary.

Each reads only summary.json, so any CI system can gate on a run after the fact too.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


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
        msg = v.get("sentence", "")
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


def markdown(summary: dict[str, Any]) -> str:
    """A short verdict table for the GitHub Actions job page."""
    guard = summary.get("guard") or {}
    lines = [
        f"### harness: {summary.get('suite')} (run {summary.get('run_id')}) — exit {summary.get('exit_code')}",
        "",
    ]
    if not guard:
        lines.append("No guard declared: nothing to gate.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"Hypothesis: {guard.get('test')} on `{guard.get('metric')}`, margin {guard.get('margin')}, "
        f"confidence {guard.get('confidence')} (fingerprint `{guard.get('fingerprint')}`)"
    )
    lines += ["", "| variant | verdict | explanation |", "| --- | --- | --- |"]
    for name, v in (guard.get("verdicts") or {}).items():
        icon = _ICONS.get(v["verdict"], "")
        text = v.get("sentence", "").replace("|", "\\|")
        lines.append(f"| {name} | {icon} {v['verdict']} | {text} |")
    moved = guard.get("moved_goalposts")
    if moved:
        lines += ["", f"**Moved goalposts:** {'; '.join(moved['changes'])}"]
    return "\n".join(lines) + "\n"


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
