"""Break-even of a cheaper variant: when does its training cost pay for itself?

A fine-tuned small model that is cheaper per request than the baseline recovers its training cost
after training / (baseline − variant cost per request) requests. Costs per request come from the
run itself (measured spend / calls), so they reflect the suite's real prompts and outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cost_per_request(stats: dict[str, Any]) -> float | None:
    """Measured USD per call of one variant (None when it made no calls)."""
    calls = stats.get("n_calls") or 0
    if calls <= 0 or stats.get("cost_usd") is None:
        return None
    return float(stats["cost_usd"]) / calls


def cost_ratio(variant_cpr: float | None, baseline_cpr: float | None) -> float | None:
    """Variant cost per request as a multiple of the baseline's (0.17 = 17% of the cost)."""
    if variant_cpr is None or not baseline_cpr:
        return None
    return variant_cpr / baseline_cpr


def break_even(
    training_usd: float,
    baseline_cpr: float,
    variant_cpr: float,
    monthly_requests: float | None = None,
) -> dict[str, float | None] | None:
    """Break-even requests, payback months and monthly saving; None if the variant is not cheaper.

    Pure arithmetic, so each number can be checked by hand:
    break_even_requests = training / (baseline − variant), payback = that / monthly volume.
    """
    saving = baseline_cpr - variant_cpr
    if saving <= 0:
        return None
    requests = training_usd / saving
    return {
        "training_usd": training_usd,
        "baseline_cost_per_request": baseline_cpr,
        "variant_cost_per_request": variant_cpr,
        "saving_per_request": saving,
        "cost_ratio": cost_ratio(variant_cpr, baseline_cpr),
        "break_even_requests": requests,
        "monthly_requests": monthly_requests,
        "payback_months": requests / monthly_requests if monthly_requests else None,
        "monthly_saving_usd": saving * monthly_requests if monthly_requests else None,
    }


def break_even_table(suite, summary: dict[str, Any]) -> dict[str, dict]:
    """summary["break_even"]: one entry per variant cheaper per request than the baseline."""
    variants = summary.get("variants", {})
    base = variants.get(suite.baseline)
    base_cpr = cost_per_request(base) if base else None
    if not base_cpr:
        return {}
    monthly = suite.spec.volume.monthly_requests if suite.spec.volume else None
    out = {}
    for v in suite.variants:
        if v.name == suite.baseline or v.name not in variants:
            continue
        cpr = cost_per_request(variants[v.name])
        if cpr is None:
            continue
        training = v.training.total_usd() if v.training else 0.0
        row = break_even(training, base_cpr, cpr, monthly)
        if row is not None:
            out[v.name] = row
    return out


def plot_break_even(
    break_even_rows: dict[str, dict], path: str | Path, baseline: str = "baseline"
) -> Path | None:
    """Cumulative cost vs requests served: baseline line against training + variant line.

    Writes a PNG (matplotlib Agg, imported here so the CLI stays fast); None if nothing to plot.
    """
    if not break_even_rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    rows = break_even_rows.values()
    # Three times the latest break-even keeps every crossing readable (a month of traffic can
    # be orders of magnitude larger); the monthly volume is marked when it fits.
    horizon = max(max(r["break_even_requests"] for r in rows) * 3, 10.0)
    monthly = next((r["monthly_requests"] for r in rows if r.get("monthly_requests")), None)
    x = np.linspace(0, horizon, 200)
    base_cpr = next(iter(rows))["baseline_cost_per_request"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(x, base_cpr * x, color="black", label=f"{baseline} (no training)")
    for name, r in break_even_rows.items():
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
