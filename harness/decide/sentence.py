"""The verdict as one sentence a manager can read, and its headline ("PASS — flagged: …")."""

from __future__ import annotations

from harness.decide.ledger import unknown_training_text, usd
from harness.decide.rule import ABANDON, FAIL, INCONCLUSIVE, PASS
from harness.stats.numbers import dollars, p_value, signed
from harness.suite import NET_MONTHLY_VALUE

# How metric names read in a sentence.
_NAMES = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "weighted_f1": "weighted-F1",
    "f1": "F1",
    "exact_match": "exact match",
    "format_compliance": "format compliance",
    "win_rate": "win rate",
    NET_MONTHLY_VALUE: "net monthly value",
}


def p_phrase(p: float | None) -> str:
    """ "= 0.0123" or "< 0.001", to follow "p"."""
    text = p_value(p)
    return text if text.startswith("<") else f"= {text}"


def metric_label(metric: str) -> str:
    return _NAMES.get(metric, metric.replace("_", " "))


def suite_number(x: float) -> str:
    """A margin or confidence as written in a suite: 0.20, 0.03, 0.025."""
    return f"{x:.2f}" if round(x, 2) == x else f"{x:g}"


def value_sentence(name: str, baseline: str, d: dict) -> str:
    """The month in dollars, e.g. "ft-mini vs gpt-4o: saves $190/month in API calls and costs
    $24,000 [−$9,600, +$56,000]/month in extra errors; net −$23,800 [−$55,000, +$9,800]/month
    (95% paired CI)"."""
    api = d["api_saving_usd"]
    api_part = (
        f"saves {dollars(api)}/month in API calls"
        if api >= 0
        else f"costs {dollars(-api)}/month more in API calls"
    )
    extra, lo, hi = (
        d["extra_errors_usd"],
        d.get("extra_errors_ci_low"),
        d.get("extra_errors_ci_high"),
    )
    sign = 1 if extra >= 0 else -1  # "saves" reads the interval the other way round
    ci = ""
    if lo is not None and hi is not None:
        lo, hi = sorted((sign * lo, sign * hi))
        ci = f" [{dollars(lo, True)}, {dollars(hi, True)}]"
    err_part = (
        f"costs {dollars(extra)}{ci}/month in extra errors"
        if extra >= 0
        else f"saves {dollars(-extra)}{ci}/month in errors avoided"
    )
    train = d.get("extra_training_usd") or 0.0
    train_part = f", {dollars(train, True)}/month amortised training" if train else ""
    net_ci = ""
    if d.get("ci_low") is not None:
        net_ci = f" [{dollars(d['ci_low'], True)}, {dollars(d['ci_high'], True)}]"
    conf = f" ({d['confidence']:.0%} paired CI)" if d.get("confidence") else ""
    return (
        f"{name} vs {baseline}: {api_part} and {err_part}{train_part}; "
        f"net {dollars(d['value'], True)}{net_ci}/month{conf}"
    )


def _count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:,.0f}"


def _next_step(v: dict, name: str, baseline: str, missing: bool) -> str:
    """What would decide an inconclusive verdict: the baseline's run, or more test examples."""
    if missing:
        return f": run the baseline too (--variant {baseline} --variant {name})"
    n = v.get("required_n")
    if not n:
        return ", a larger test set is needed to decide"
    if n > v.get("n_examples", 0):
        return f", ~{n:,} test examples would decide"
    # Large enough for the planned Δ: this Δ sits near the threshold.
    return (
        f"; the interval spans the threshold although ~{n:,} test examples suffice "
        "when the true Δ is a margin beyond it"
    )


def _family_note(holm_: dict) -> str:
    """The level a hypothesis of a family was tested at (Holm, or none: said so)."""
    if holm_.get("m", 1) <= 1:
        return ""
    if holm_.get("correction") == "none":
        return (
            f" (no correction across {holm_['m']} hypotheses (correction: none): tested at "
            f"one-sided α = {holm_['alpha']:.4g}, p {p_phrase(holm_['p_value'])})"
        )
    return (
        f" (Holm across {holm_['m']} hypotheses: tested at one-sided "
        f"α = {holm_['alpha']:.4g}, p {p_phrase(holm_['p_value'])})"
    )


def sentence(name: str, baseline: str, v: dict, guard) -> str:
    """One plain sentence a manager can read, e.g.
    "ft-mini: +3.1 pts macro-F1 [−0.8, +7.0] vs zero-shot; target +5.0 not shown — inconclusive,
    ~420 test examples would decide. 2 of 3 iterations, $61 spent."
    """
    metric = guard.metric
    label = metric_label(metric)
    if "error_rate" in v["flags"]:
        e = v["errors"]
        return (
            f"{name}: cannot be judged — {e['rate']:.1%} provider errors on {e['variant']} "
            f"(max {guard.max_error_rate:.1%}); fix the provider or its rate limits and run again."
        )
    d = v["delta"]
    missing = d is None or d.get("value") is None
    if missing:
        head = f"{name}: no paired {label} difference vs {baseline}"
    else:
        ci = ""
        if d.get("ci_low") is not None and d.get("ci_high") is not None:
            ci = f" [{signed(d['ci_low'], metric)}, {signed(d['ci_high'], metric)}]"
        head = f"{name}: {signed(d['value'], metric, unit=True)} {label}{ci} vs {baseline}"
        if metric == NET_MONTHLY_VALUE and "api_saving_usd" in d:
            head = f"{value_sentence(name, baseline, d)}"
    thr = signed(d["threshold"], metric)
    superiority = guard.test == "superiority"
    target = f"target {thr}" if superiority else f"no worse than {thr}"
    status = v["status"]  # the rule's outcome before the ledger could turn it into abandon
    shown = {
        PASS: "shown",
        FAIL: "ruled out" if superiority else "not met",
        INCONCLUSIVE: "not shown",
    }[status]
    verdict = v["verdict"]
    text = f"{head}; {target} {shown} — {verdict}"
    if verdict == INCONCLUSIVE:
        text += _next_step(v, name, baseline, missing)
    text += _family_note(v.get("holm") or {})
    if not superiority and v.get("cost_ratio") is not None:
        text += f", at {v['cost_ratio']:.2f}× the baseline's cost per request"
        be = v.get("break_even")
        # A payback period only where training may go ahead: not for fail or abandon.
        if be and verdict in (PASS, INCONCLUSIVE):
            text += f", training pays back after {_count(be['break_even_requests'])} requests"
            if be.get("payback_months") is not None:
                text += f" ({be['payback_months']:.1f} months)"
    led = v["ledger"]
    if verdict == ABANDON:
        text += (
            f": {v['limit']} without a pass; {usd(led['spent_usd'])} sunk "
            f"({usd(led['training_usd'])} training + {usd(led['eval_usd'])} evaluation"
            f"{unknown_training_text(led)})"
        )
        if led.get("best_delta") is not None:
            text += f", best so far {signed(led['best_delta'], metric, unit=True)}"
        text += "."
    else:
        its = (
            f"{led['iterations']} of {guard.max_iterations}"
            if guard.max_iterations
            else f"{led['iterations']}"
        )
        word = "iteration" if led["iterations"] == 1 and not guard.max_iterations else "iterations"
        spent = (
            f"{usd(led['spent_usd'])} of {usd(guard.budget_usd)} budget"
            if guard.budget_usd is not None
            else usd(led["spent_usd"])
        )
        text += f". {its} {word}, {spent} spent{unknown_training_text(led)}."
    return text


def headline(v: dict, moved: dict | None, amended: list[dict] | None = None) -> str:
    """What the terminal puts before the sentence: the verdict, and why a pass still exits 1."""
    if v["verdict"] == PASS and amended and not moved:
        keys = ", ".join(dict.fromkeys(a["key"] for a in amended))
        return (
            f"PASS — flagged: amended protocol ({keys}); exit 1: a pass under a protocol "
            "amended since registration does not count"
        )
    if v["verdict"] == PASS and moved:
        changes = ", ".join(c.replace(":", "", 1) for c in moved["changes"])
        return (
            f"PASS — flagged: goalposts moved ({changes}); exit 1: a pass under a hypothesis "
            "weaker than the registered one does not count"
        )
    return v["verdict"].upper()
