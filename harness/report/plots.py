"""Report plots (matplotlib, Agg backend, imported lazily). Each function writes one PNG.

Every function takes plain data (no run directory) and returns the path it wrote, or None when
there is nothing to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_F1_CLASSES = 30
MAX_CONFUSION_CLASSES = 20


def load_pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines; must precede pyplot
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    load_pyplot().close(fig)
    return path


def cost_quality(points: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """Quality vs cost per 1k requests, one point per variant with its CI; the baseline marked.

    points: [{"name", "cost_per_1k", "value", "ci_low", "ci_high", "baseline": bool,
    "monthly_usd": monthly cost with errors priced (suites with `value:`) or None}]
    """
    points = [p for p in points if p.get("value") is not None and p.get("cost_per_1k") is not None]
    if not points:
        return None
    plt = load_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in points:
        lo = p["value"] - p["ci_low"] if p.get("ci_low") is not None else 0
        hi = p["ci_high"] - p["value"] if p.get("ci_high") is not None else 0
        style = (
            {"marker": "*", "markersize": 16, "color": "black"}
            if p.get("baseline")
            else {"marker": "o", "markersize": 8}
        )
        ax.errorbar(
            p["cost_per_1k"], p["value"], yerr=[[lo], [hi]], capsize=4, linestyle="none", **style
        )
        label = p["name"] + (" (baseline)" if p.get("baseline") else "")
        if p.get("monthly_usd") is not None:  # the suite's `value:`: the month in dollars
            label += f"\n${p['monthly_usd']:,.0f}/month"
        ax.annotate(
            label, (p["cost_per_1k"], p["value"]), textcoords="offset points", xytext=(8, 6)
        )
    ax.set_xlabel("cost per 1k requests (USD)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs cost (bars: 95% CI)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    return _save(fig, path)


def per_class_f1(per_class: dict[str, dict[str, dict[str, float]]], path: Path) -> Path | None:
    """Grouped horizontal bars of per-class F1 by variant; skipped above MAX_F1_CLASSES classes.

    per_class: {variant: {label: {"f1": ...}}}
    """
    import numpy as np

    variants = [v for v, pc in per_class.items() if pc]
    labels = sorted({lab for v in variants for lab in per_class[v]})
    if not variants or not labels or len(labels) > MAX_F1_CLASSES:
        return None
    plt = load_pyplot()
    fig, ax = plt.subplots(
        figsize=(8, max(3.0, 0.35 * len(labels) * max(1, len(variants)) ** 0.5 + 1))
    )
    height = 0.8 / len(variants)
    y = np.arange(len(labels))
    for i, v in enumerate(variants):
        vals = [(per_class[v].get(lab) or {}).get("f1") or 0.0 for lab in labels]
        ax.barh(y + i * height, vals, height=height, label=v)
    ax.set_yticks(y + height * (len(variants) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title("per-class F1")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def confusion(
    labels: list[str], y_true: list[str], y_pred: list[str], title: str, path: Path
) -> Path | None:
    """Confusion matrix (rows: expected, columns: predicted; unparsed answers as 'other')."""
    if not labels or len(labels) > MAX_CONFUSION_CLASSES or not y_true:
        return None
    from sklearn.metrics import ConfusionMatrixDisplay

    shown = list(labels)
    y_pred = [p if p in labels else "(other)" for p in y_pred]
    if "(other)" in y_pred:
        shown.append("(other)")
    plt = load_pyplot()
    size = 3 + 0.4 * len(shown)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=shown,
        ax=ax,
        colorbar=False,
        xticks_rotation="vertical",
        cmap="Blues",
    )
    ax.set_title(title)
    return _save(fig, path)


def break_even(summary: dict[str, Any], path: Path) -> Path | None:
    """Cumulative cost vs requests served: the baseline's line against training + each cheaper
    variant's line (the rows of summary["break_even"], harness.decide.costs)."""
    rows_by_name = summary.get("break_even") or {}
    if not rows_by_name:
        return None
    import matplotlib.ticker
    import numpy as np

    plt = load_pyplot()
    baseline = summary.get("baseline") or "baseline"
    rows = rows_by_name.values()
    # Three times the latest break-even keeps every crossing readable (a month of traffic can
    # be orders of magnitude larger); the monthly volume is marked when it fits.
    horizon = max(max(r["break_even_requests"] for r in rows) * 3, 10.0)
    monthly = next((r["monthly_requests"] for r in rows if r.get("monthly_requests")), None)
    x = np.linspace(0, horizon, 200)
    base_cpr = next(iter(rows))["baseline_cost_per_request"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(x, base_cpr * x, color="black", label=f"{baseline} (no training)")
    for name, r in rows_by_name.items():
        (line,) = ax.plot(x, r["training_usd"] + r["variant_cost_per_request"] * x, label=name)
        be = r["break_even_requests"]
        ax.scatter([be], [base_cpr * be], color=line.get_color(), zorder=3)
        ax.annotate(
            f"{be:,.0f} req",
            (be, base_cpr * be),
            textcoords="offset points",
            xytext=(5, -12),
            fontsize=8,
        )
    if monthly and monthly <= horizon:
        ax.axvline(monthly, color="grey", linestyle=":", label="one month of traffic")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("requests served")
    ax.set_ylabel("cumulative cost (USD)")
    ax.set_title("Break-even: training cost recovered by cheaper requests")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, Path(path))
