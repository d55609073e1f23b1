"""`harness run`'s terminal output: variant and quality tables, notes, verdict sentences."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.decide.sections import decision_lines, plain
from harness.decide.sentence import value_sentence
from harness.report.value_section import verdict_note
from harness.results import as_summary
from harness.score.registry import is_quality, lookup
from harness.stats.numbers import exit_text, with_ci
from harness.stats.numbers import money as usd


def print_summary(  # noqa: C901
    summary: dict[str, Any],
    variants: list[str],
    run_dir: Path,
    *,
    notes: dict[str, list[str]],
    as_json: bool = False,
    mlflow_url: str | None = None,
) -> None:
    """The run's summary on stdout: a table for people, or the summary JSON with --json."""
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=120)  # pipes and CI logs: don't truncate columns
    console.print(variant_table(summary, variants))
    quality = metrics_table(summary)
    if quality is not None:
        console.print(quality)
    for name, v in (summary.get("variants") or {}).items():
        if v.get("retries"):
            console.print(
                f"note: {name}: {v.get('retried_calls', 0)} calls answered after retries "
                f"({v['retries']} retries of 429 / 5xx / timeouts)",
                markup=False,
                highlight=False,
            )
    for name, lines in notes.items():
        for note in lines:
            console.print(f"note: {name}: {note}")
    # Notes about the run as a whole, e.g. a ledger read from runs/ only: they weaken the verdict.
    for note in summary.get("notes") or []:
        console.print(f"note: {note}", markup=False, highlight=False)
    # The month in dollars (suites with `value:`): what the decision is worth.
    value = summary.get("value") or {}
    for name, d in (value.get("vs_baseline") or {}).items():
        if d is not None and d.get("value") is not None:
            console.print(
                f"value: {value_sentence(name, summary.get('baseline'), d)}"
                + verdict_note(summary, name),
                markup=False,
                highlight=False,
            )
    for name, why in (value.get("not_valued") or {}).items():
        console.print(f"value: {name} not valued — {why}", markup=False, highlight=False)
    # The guard's verdicts, one plain sentence each (markup off: sentences hold brackets).
    for key, v in ((summary.get("guard") or {}).get("verdicts") or {}).items():
        # A candidate under several hypotheses: which one (their sentences can be the same).
        h = v.get("hypothesis") or {}
        which = f" ({h['metric']})" if h.get("metric") and key != h.get("candidate") else ""
        console.print(
            f"{v.get('headline') or v['verdict'].upper()}{which}: {v['sentence']}",
            markup=False,
            highlight=False,
        )
    if summary.get("guard"):
        # The decision lines every surface opens with (harness.decide.sections).
        for line in decision_lines(as_summary(summary)):
            console.print(f"decision: {plain(line)}", markup=False, highlight=False)
        console.print(exit_text(summary.get("exit_code")), markup=False, highlight=False)
    console.print(f"results: {run_dir}", markup=False, highlight=False)
    if mlflow_url:
        console.print(f"MLflow: {mlflow_url}", markup=False, highlight=False)


def variant_table(summary: dict[str, Any], variants: list[str]):
    """A rich Table of answers/errors/latency/cost per variant, from the summary's figures."""
    table = Table(title=f"{summary['suite']} · run {summary['run_id']}")
    for col in (
        "variant",
        "calls",
        "errors",
        "retries",
        "cached",
        "p50 ms",
        "p95 ms",
        "tokens in/out",
        "spent",
        "would cost",
    ):
        table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for name in variants:
        s = summary["variants"][name]
        table.add_row(
            name,
            str(s["n_calls"]),
            str(s["n_errors"]),
            str(s.get("retries", 0)),
            str(s["cached_calls"]),
            _fmt(s["latency_p50_ms"]),
            _fmt(s["latency_p95_ms"]),
            f"{s['tokens_in']}/{s['tokens_out']}",
            "unknown" if s.get("spent_usd") is None else usd(s["spent_usd"]),
            money(s["cost_usd"], s),
        )
    return table


def money(x: float | None, s: dict[str, Any]) -> str:
    """A variant's dollars; "unknown" without any price, and the count when some calls have none."""
    if x is None:
        return "unknown"
    k = s.get("unpriced_calls")
    return usd(x) + (f" ({k} unpriced)" if k else "")


def metrics_table(summary: dict[str, Any]):
    """Quality metrics with their CIs, and each variant's paired difference from the baseline."""
    names = [n for n in summary.get("metrics") or [] if lookup(n) is not None and is_quality(n)]
    variants = summary.get("variants") or {}
    if not names or not variants:
        return None
    baseline = summary.get("baseline")
    table = Table(title="quality (95% CI)")
    table.add_column("variant", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column(f"Δ vs {baseline} (paired)", justify="right", no_wrap=True)
    for vname, v in variants.items():
        for i, name in enumerate(names):
            table.add_row(
                vname if i == 0 else "",
                name,
                with_ci((v.get("metrics") or {}).get(name), name),
                "baseline"
                if vname == baseline
                else with_ci((v.get("delta") or {}).get(name), name, delta=True),
                end_section=i == len(names) - 1,
            )
    return table


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.0f}"
