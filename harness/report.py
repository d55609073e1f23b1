"""report.md and a self-contained report.html (embedded PNGs) rendered from a run directory.

The markdown is the single source: the HTML is the same document converted with markdown-it (raw
HTML disabled, so model outputs can't inject markup) with plot links replaced by data: URIs.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from harness import plots
from harness.rundir import RunFiles, load_run

WORST_PER_VARIANT = 5
CELL_CHARS = 160
# Metrics that are not rates: shown with one decimal, never as the headline quality metric.
NON_QUALITY = re.compile(r"latency|cost|tokens")


def render_report(run_dir: str | Path) -> dict[str, Any]:
    """Write report.md, report.html and plots/*.png into run_dir; return their paths.

    Returns {"md": Path, "html": Path, "plots": [Path, ...]}.
    """
    run = load_run(run_dir)
    plot_paths = _plots(run)
    md = render_markdown(run, plot_paths)
    md_path = run.path / "report.md"
    md_path.write_text(md, encoding="utf-8")
    html_path = run.path / "report.html"
    html_path.write_text(_html(md, run), encoding="utf-8")
    return {"md": md_path, "html": html_path, "plots": plot_paths}


# ---------------------------------------------------------------- helpers shared with tracking


def primary_metric(summary: dict[str, Any]) -> str | None:
    """The hypothesis metric, else the first declared quality metric."""
    hyp = summary.get("hypothesis") or {}
    if hyp.get("metric"):
        return hyp["metric"]
    names = list(summary.get("metrics") or [])
    for v in (summary.get("variants") or {}).values():
        names += [m for m in v.get("metrics", {}) if m not in names]
    quality = [m for m in names if not NON_QUALITY.search(m)]
    return (quality or names or [None])[0]


def example_score(record: dict[str, Any]) -> float:
    """One number per record for ranking: `correct` when scored, else the mean score; errors 0."""
    if record.get("error"):
        return 0.0
    scores = {k: v for k, v in (record.get("scores") or {}).items() if isinstance(v, (int, float))}
    if "correct" in scores:
        return float(scores["correct"])
    return sum(scores.values()) / len(scores) if scores else 0.0


def reason_text(record: dict[str, Any]) -> str:
    if record.get("error"):
        return f"error: {record['error']}"
    reasons = record.get("reasons") or {}
    return "; ".join(f"{k}: {v}" for k, v in reasons.items() if v)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def cost_per_1k(v: dict[str, Any]) -> float | None:
    metric = (v.get("metrics") or {}).get("cost_per_1k")
    if isinstance(metric, dict) and metric.get("value") is not None:
        return metric["value"]
    if v.get("cost_usd") is None or not v.get("n_calls"):
        return None
    return v["cost_usd"] / v["n_calls"] * 1000


# ---------------------------------------------------------------- markdown


def _num(x: Any, metric: str = "") -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, float)):
        if metric.startswith("cost"):
            return f"${x:.4g}"  # small per-request costs need significant digits, not decimals
        if NON_QUALITY.search(metric) and abs(x) >= 10:
            return f"{x:,.1f}"
        return f"{x:.3f}"
    return str(x)


def _ci(m: dict[str, Any] | None, metric: str) -> str:
    if not m:
        return "–"
    text = _num(m.get("value"), metric)
    if m.get("ci_low") is not None and m.get("ci_high") is not None:
        text += f" [{_num(m['ci_low'], metric)}, {_num(m['ci_high'], metric)}]"
    return text


def _cell(value: Any) -> str:
    text = as_text(value).replace("\r", " ").replace("\n", " ")
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    # Pipes end a table cell; backticks/asterisks would turn model output into formatting.
    return re.sub(r"([|\\`*_\[\]<>])", r"\\\1", text)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def render_markdown(run: RunFiles, plot_paths: list[Path]) -> str:
    s = run.summary
    variants = s.get("variants") or {}
    baseline = s.get("baseline")
    metrics = list(s.get("metrics") or [])
    for v in variants.values():
        metrics += [m for m in v.get("metrics", {}) if m not in metrics]
    lines = [f"# {run.suite_name} — run {s.get('run_id', run.path.name)}", ""]
    facts = [
        f"task: {s.get('task', '?')}",
        f"test examples: {s.get('n_examples', '?')}",
        f"baseline: `{baseline}`",
        f"started {s.get('started_at', '?')}, finished {s.get('finished_at', '?')}",
    ]
    lines += ["; ".join(facts), ""]
    hyp = s.get("hypothesis")
    if hyp:
        lines += [
            f"**Hypothesis** (pre-registered): {hyp.get('test')} on `{hyp.get('metric')}`, "
            f"margin {hyp.get('margin')}, confidence {hyp.get('confidence')}.",
            "",
        ]

    lines += _verdicts(s)

    lines += ["## Comparison", ""]
    header = ["variant", "kind", "model", *metrics, "cost (USD)", "cost / 1k req", "errors"]
    rows = []
    for name, v in variants.items():
        label = f"**{name}** (baseline)" if name == baseline else f"**{name}**"
        errors = f"{v.get('n_errors', 0)} / {v.get('n_calls', 0)}"
        if v.get("errors_by_reason"):
            errors += " (" + ", ".join(f"{k}: {n}" for k, n in v["errors_by_reason"].items()) + ")"
        rows.append(
            [label, _cell(v.get("kind")), _cell(v.get("model"))]
            + [_ci((v.get("metrics") or {}).get(m), m) for m in metrics]
            + [_num(v.get("cost_usd"), "cost"), _num(cost_per_1k(v), "cost"), _cell(errors)]
        )
    lines += _table(header, rows)
    lines += ["Values with [95% CI]; rates are fractions (0.53 = 53%).", ""]

    delta_rows = []
    for name, v in variants.items():
        for m, d in (v.get("delta") or {}).items():
            p = d.get("p_value")
            delta_rows.append([f"**{name}**", m, _ci(d, m), "–" if p is None else f"{p:.3g}"])
    if delta_rows:
        lines += [f"## Differences vs baseline `{baseline}` (paired, same examples)", ""]
        lines += _table(["variant", "metric", "Δ [95% CI]", "p"], delta_rows)

    lines += _break_even(s)

    if plot_paths:
        lines += ["## Plots", ""]
        for p in plot_paths:
            lines += [f"![{p.stem}](plots/{p.name})", ""]

    lines += _worst(run)
    return "\n".join(lines).rstrip() + "\n"


def _verdicts(s: dict[str, Any]) -> list[str]:
    guard = s.get("guard") or {}
    verdicts = guard.get("verdicts") or {}
    if not verdicts:
        return []
    lines = ["## Verdicts", ""]
    for name, v in verdicts.items():
        verdict = v.get("verdict", "?") if isinstance(v, dict) else v
        sentence = v.get("sentence", "") if isinstance(v, dict) else ""
        lines.append(f"- **{name} — {verdict}**: {_cell(sentence)}")
        for flag in (v.get("flags") or []) if isinstance(v, dict) else []:
            lines.append(f"  - ⚠ {_cell(flag)}")
    goalposts = guard.get("moved_goalposts")
    if goalposts:
        lines.append(f"- **moved goalposts**: {_cell(goalposts)}")
    lines.append(f"\nexit code: {s.get('exit_code', '?')}")
    return lines + [""]


BREAK_EVEN_COLUMNS = {
    "training_usd": "training",
    "saving_per_request": "saving / request",
    "cost_ratio": "cost ratio",
    "break_even_requests": "break-even requests",
    "payback_months": "payback (months)",
    "monthly_saving_usd": "monthly saving",
}


def _be_num(key: str, x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "–"
    if key.endswith("_usd") or key.endswith("per_request"):
        return f"${x:,.4g}" if abs(x) < 1000 else f"${x:,.0f}"
    if key.endswith("requests"):
        return f"{x:,.0f}"
    return f"{x:.2f}"


def _break_even(s: dict[str, Any]) -> list[str]:
    rows = {k: v for k, v in (s.get("break_even") or {}).items() if isinstance(v, dict)}
    if not rows:
        return []
    lines = ["## Break-even (variants cheaper per request than the baseline)", ""]
    table = [
        [f"**{name}**"] + [_be_num(k, v.get(k)) for k in BREAK_EVEN_COLUMNS]
        for name, v in rows.items()
    ]
    return lines + _table(["variant", *BREAK_EVEN_COLUMNS.values()], table)


def _worst(run: RunFiles) -> list[str]:
    lines = [f"## Worst examples (up to {WORST_PER_VARIANT} per variant)", ""]
    any_rows = False
    for name in run.variants:
        recs = run.records.get(name) or []
        worst = sorted(recs, key=lambda r: (example_score(r), str(r.get("id"))))[:WORST_PER_VARIANT]
        worst = [r for r in worst if example_score(r) < 1.0]
        if not worst:
            continue
        any_rows = True
        rows = []
        for r in worst:
            ex = run.examples.get(r.get("id"), {})
            rows.append(
                [
                    _cell(r.get("id")),
                    _cell(ex.get("input")),
                    _cell(ex.get("expected")),
                    _cell(r.get("output") if r.get("output") is not None else r.get("error")),
                    _num(example_score(r)),
                    _cell(reason_text(r)),
                ]
            )
        lines += [f"### {name}", ""]
        lines += _table(["id", "input", "expected", "output", "score", "reason"], rows)
    if not any_rows:
        lines += ["No example scored below 1.", ""]
    return lines


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
        from harness.costs import plot_break_even  # the guard's plot (harness.costs)

        paths.append(
            plot_break_even(
                s["break_even"],
                out_dir / "break_even.png",
                baseline=s.get("baseline") or "baseline",
            )
        )
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
