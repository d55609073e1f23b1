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
from harness.results import VariantFigures, as_summary, figures_of
from harness.score.registry import is_quality, lookup
from harness.stats.numbers import exit_text, with_ci
from harness.stats.numbers import money as usd


def print_summary(
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
    lines = [
        *retry_notes(summary),
        *(f"note: {name}: {note}" for name, own in notes.items() for note in own),
        # Notes about the run as a whole, e.g. a ledger read from runs/ only: they weaken the
        # verdict.
        *(f"note: {note}" for note in summary.get("notes") or []),
        *value_notes(summary),
        *verdict_lines(summary),
        f"results: {run_dir}",
    ]
    if mlflow_url:
        lines.append(f"MLflow: {mlflow_url}")
    for line in lines:  # markup off: sentences hold brackets
        console.print(line, markup=False, highlight=False)


def _figures(summary: dict[str, Any]) -> dict[str, VariantFigures]:
    return {n: figures_of(v) for n, v in (summary.get("variants") or {}).items()}


def retry_notes(summary: dict[str, Any]) -> list[str]:
    """Provider retries are never invisible: a slow, rate-limited provider shows."""
    return [
        f"note: {name}: {v.retried_calls} calls answered after retries "
        f"({v.retries} retries of 429 / 5xx / timeouts)"
        for name, v in _figures(summary).items()
        if v.retries
    ]


def value_notes(summary: dict[str, Any]) -> list[str]:
    """The month in dollars (suites with `value:`): what the decision is worth."""
    value = summary.get("value") or {}
    lines = [
        f"value: {value_sentence(name, str(summary.get('baseline')), d)}"
        + verdict_note(summary, name)
        for name, d in (value.get("vs_baseline") or {}).items()
        if d is not None and d.get("value") is not None
    ]
    return lines + [
        f"value: {name} not valued — {why}" for name, why in (value.get("not_valued") or {}).items()
    ]


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The guard's verdicts, one plain sentence each, then the decision lines every surface
    opens with (harness.decide.sections) and what the exit code means."""
    if not summary.get("guard"):
        return []
    typed = as_summary(summary)
    assert typed.guard is not None
    lines = []
    for key, v in typed.guard.verdicts.items():
        # A candidate under several hypotheses: which one (their sentences can be the same).
        h = v.hypothesis
        which = f" ({h.metric})" if h is not None and key != h.candidate else ""
        lines.append(f"{v.headline or v.verdict.upper()}{which}: {v.sentence}")
    lines += [f"decision: {plain(line)}" for line in decision_lines(typed)]
    return [*lines, exit_text(summary.get("exit_code"))]


def variant_table(summary: dict[str, Any], variants: list[str]) -> Table:
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
    figures = _figures(summary)
    for name in variants:
        s = figures[name]
        table.add_row(
            name,
            str(s.n_calls),
            str(s.n_errors),
            str(s.retries),
            str(s.cached_calls),
            _fmt(s.latency_p50_ms),
            _fmt(s.latency_p95_ms),
            f"{s.tokens_in}/{s.tokens_out}",
            "unknown" if s.spent_usd is None else usd(s.spent_usd),
            money(s.cost_usd, s),
        )
    return table


def money(x: float | None, s: VariantFigures) -> str:
    """A variant's dollars; "unknown" without any price, and the count when some calls have none;
    "–" when no call was answered (there is nothing to price: report.md reads the same)."""
    if x is None:
        return "–" if s.n_calls and s.answered <= 0 else "unknown"
    k = s.unpriced_calls
    return usd(x) + (f" ({k} unpriced)" if k else "")


def metrics_table(summary: dict[str, Any]) -> Table | None:
    """Quality metrics with their CIs, and each variant's paired difference from the baseline."""
    names = [n for n in summary.get("metrics") or [] if lookup(n) is not None and is_quality(n)]
    variants = _figures(summary)
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
                with_ci(v.metrics.get(name), name),
                "baseline"
                if vname == baseline
                else with_ci((v.delta or {}).get(name), name, delta=True),
                end_section=i == len(names) - 1,
            )
    return table


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"
