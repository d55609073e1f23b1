"""report.md and a self-contained report.html (embedded PNGs) rendered from a run directory.

The markdown is the single source: the HTML is the same document converted with markdown-it (raw
HTML disabled, so model outputs can't inject markup) with plot links replaced by data: URIs.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from harness.decide.costs import break_even_table
from harness.errors import SuiteError
from harness.report import plots
from harness.report.markdown import cost_per_1k, primary_metric, render_markdown
from harness.report.value_section import monthly_cost
from harness.rundir.reader import RunFiles, load_run, resolved_suite
from harness.score import registry as M
from harness.score.metrics import cost_figures
from harness.score.table import make_table
from harness.stats.summary import priced


def render_report(run_dir: str | Path | RunFiles) -> dict[str, Any]:
    """Write report.md, report.html and plots/*.png into run_dir (or a run already loaded with
    harness.rundir.reader.load_run); return their paths.

    Returns {"md": Path, "html": Path, "plots": [Path, ...]}.
    """
    run = run_dir if isinstance(run_dir, RunFiles) else load_run(run_dir)
    plot_paths = _plots(run)
    md = render_markdown(run, plot_paths)
    md_path = run.path / "report.md"
    md_path.write_text(md, encoding="utf-8")
    html_path = run.path / "report.html"
    html_path.write_text(_html(md, run), encoding="utf-8")
    return {"md": md_path, "html": html_path, "plots": plot_paths}


def reprice(run: RunFiles) -> list[str]:
    """`harness report`: each variant's money figures again from its records' tokens at the
    `pricing:` of the run's suite.yaml, as a run prices them today (a summary written before
    pricing moved to summary time, or with unpriced cached answers, gets its dollars and
    break-even). Changes the loaded summary only, with a note; returns the variants re-priced."""
    try:
        suite = resolved_suite(run)
    except (SuiteError, OSError):
        return []
    known = {v.name for v in suite.variants}
    variants = run.summary.get("variants") or {}
    records = {n: recs for n, recs in run.records.items() if n in variants and n in known}
    changed = []
    for name, recs in priced(suite, records).items():
        table = make_table(recs, dict.fromkeys(r.get("id") for r in recs))
        stats = variants[name]
        new = cost_figures(table.records)
        for metric in ("cost_per_1k", "cost_per_example"):
            if isinstance((stats.get("metrics") or {}).get(metric), dict):
                new_value = M.compute(metric, table, {})
                if stats["metrics"][metric].get("value") != new_value:
                    stats["metrics"][metric]["value"] = new_value
                    changed.append(name)
        if any(stats.get(k) != v for k, v in new.items()):
            stats.update(new)
            changed.append(name)
    changed = sorted(set(changed))
    if changed:
        run.summary["break_even"] = break_even_table(suite, run.summary)
        run.notes.append(
            f"costs of {', '.join(changed)} re-priced from their token counts at the suite's "
            "`pricing:`; summary.json and the verdict sentences keep the run's figures"
        )
    return changed


# ---------------------------------------------------------------- plots


def _plots(run: RunFiles) -> list[Path]:
    s = run.summary
    variants = s.get("variants") or {}
    out_dir = run.path / "plots"
    paths: list[Path | None] = []
    metric = primary_metric(s)
    if metric:
        points = []
        for name, v in variants.items():
            m = (v.get("metrics") or {}).get(metric) or {}
            points.append(
                {
                    "name": name,
                    "cost_per_1k": cost_per_1k(v),
                    "value": m.get("value"),
                    "ci_low": m.get("ci_low"),
                    "ci_high": m.get("ci_high"),
                    "baseline": name == s.get("baseline"),
                    "monthly_usd": monthly_cost(s, name),
                }
            )
        paths.append(plots.cost_quality(points, metric, out_dir / "cost_quality.png"))
    per_class = {name: v.get("per_class") or {} for name, v in variants.items()}
    paths.append(plots.per_class_f1(per_class, out_dir / "per_class_f1.png"))
    if s.get("task") == "classification" and run.examples:
        labels = run.labels or sorted({lab for pc in per_class.values() for lab in pc})
        for name in run.variants:
            pairs = [
                (str(run.examples[r["id"]]["expected"]), str(r.get("parsed")))
                for r in run.records.get(name) or []
                if r.get("id") in run.examples
            ]
            if pairs:
                y_true, y_pred = zip(*pairs, strict=True)
                safe = re.sub(r"[^\w.-]", "_", name)
                paths.append(
                    plots.confusion(
                        labels,
                        list(y_true),
                        list(y_pred),
                        f"{name}: confusion",
                        out_dir / f"confusion_{safe}.png",
                    )
                )
    if s.get("break_even"):
        paths.append(plots.break_even(s, out_dir / "break_even.png"))
    return [p for p in paths if p is not None]


# ---------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee} code{background:#f3f3f3;padding:0 3px}
"""


def _html(md: str, run: RunFiles) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)

    def embed(match: re.Match) -> str:
        png = run.path / "plots" / match.group(1)
        if not png.exists():
            return match.group(0)
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="plots/([^"]+\.png)"', embed, body)
    title = f"{run.suite_name} — {run.summary.get('run_id', run.path.name)}"
    from html import escape

    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n{body}</body></html>\n"
    )
