"""report.md's sections for the post-call stages: the LLM judge and retrieval."""

from __future__ import annotations

from typing import Any

from harness.report.cells import md_ci, md_inline, md_num, md_table


def _kappa(agreement: dict, which: str) -> str | None:
    """Cohen's kappa with its number of pairs, or None when nothing was paired."""
    pairs = (agreement or {}).get(f"{which}_pairs") or 0
    if not pairs:
        return None
    k = agreement.get(which)
    return f"{'–' if k is None else f'{k:.2f}'} (n={pairs})"


def _pct(x: Any) -> str | None:
    return f"{x:.0%}" if isinstance(x, (int, float)) else None


# The judge table's columns: header -> cell of one variant's summary["judge"]["variants"] entry
# (None: not measured; a column with no value in any row is left out).
JUDGE_COLUMNS = {
    "judge [95% CI]": lambda j: md_ci(j["judge"], "judge") if "judge" in j else None,
    "preference (win rate) [95% CI]": lambda j: (
        md_ci(j["preference"], "preference") if "preference" in j else None
    ),
    "wins / losses / ties": lambda j: (
        f"{j['wins']} / {j['losses']} / {j['ties_or_split']}" if "wins" in j else None
    ),
    "position bias": lambda j: _pct(j.get("position_bias")),
    "κ repeats": lambda j: _kappa(j.get("agreement"), "repeats"),
    "κ second judge": lambda j: _kappa(j.get("agreement"), "second_model"),
    "style consistency": lambda j: (
        md_ci(j["style_consistency"], "style_consistency") if "style_consistency" in j else None
    ),
    "unscored": lambda j: (
        str(j.get("unscored", 0) + j.get("unscored_preference", 0))
        if "unscored" in j or "unscored_preference" in j
        else None
    ),
}


def judge_section(s: dict[str, Any]) -> list[str]:
    """The judge stage (summary["judge"]): its own cost and calls, agreement, position bias."""
    j = s.get("judge")
    if not isinstance(j, dict) or not j.get("calls") and not j.get("variants"):
        return []
    models = ", ".join(f"`{m}`" for m in j.get("models") or []) or "–"
    cost = md_num(j.get("cost_usd"), "cost") if j.get("cost_usd") is not None else "unknown"
    lines = ["## Judge (LLM-as-judge; its cost is not in the variants' cost)", ""]
    facts = (
        f"judge model(s): {models}; {j.get('calls', 0)} calls ({j.get('cached_calls', 0)} "
        f"cached), {j.get('errors', 0)} errors; cost {cost} "
        f"({j.get('tokens_in', 0):,} tokens in, {j.get('tokens_out', 0):,} out)."
    )
    if j.get("errors_by_reason"):
        reasons = ", ".join(f"{k}: {n}" for k, n in j["errors_by_reason"].items())
        facts += f" Errors: {md_inline(reasons)} — an unscored answer is left out of the metric,"
        facts += " never counted as a pass."
    lines += [facts, ""]
    per_variant = {k: v for k, v in (j.get("variants") or {}).items() if isinstance(v, dict)}
    cells = {name: {h: f(v) for h, f in JUDGE_COLUMNS.items()} for name, v in per_variant.items()}
    shown = [h for h in JUDGE_COLUMNS if any(c[h] is not None for c in cells.values())]
    if shown:
        baseline = s.get("baseline")
        rows = [
            [f"**{name}**" + (" (baseline)" if name == baseline else "")]
            + [c[h] if c[h] is not None else "–" for h in shown]
            for name, c in cells.items()
        ]
        lines += md_table(["variant", *shown], rows)
        notes = []
        if "judge [95% CI]" in shown:
            notes.append("judge scores are fractions (pass/fail: pass rate; 1-5: (s − 1) / 4)")
        if "position bias" in shown:
            notes.append(
                "position bias: share of pairs where the judge picked the same position in both "
                "orders (those count as ties)"
            )
        if "κ repeats" in shown or "κ second judge" in shown:
            notes.append(
                "κ: Cohen's kappa between the judge's repeated samples, or between the two "
                "judge models, with the number of pairs (quadratic weights on 1-5)"
            )
        if notes:
            text = "; ".join(notes)
            lines += [text[0].upper() + text[1:] + ".", ""]
    return lines


def retrieval_section(s: dict[str, Any]) -> list[str]:
    """Retrieval quality of RAG variants whose data names gold passages."""
    rows = []
    for name, v in (s.get("variants") or {}).items():
        r = v.get("retrieval")
        if not isinstance(r, dict):
            continue
        hit = r.get("accuracy_gold_retrieved") or {}
        miss = r.get("accuracy_gold_missed") or {}
        rows.append(
            [
                f"**{name}**",
                str(r.get("k", "–")),
                str(r.get("n", "–")),
                md_num(r.get("recall_at_k")),
                md_num(r.get("mrr")),
                f"{md_num(hit.get('value'))} (n={hit.get('n', 0)})",
                f"{md_num(miss.get('value'))} (n={miss.get('n', 0)})",
            ]
        )
    if not rows:
        return []
    header = [
        "variant",
        "k",
        "examples with gold",
        "recall@k",
        "MRR",
        "accuracy, gold retrieved",
        "accuracy, gold missed",
    ]
    lines = ["## Retrieval (gold passages named by the data)", ""]
    lines += md_table(header, rows)
    return lines + [
        "A gap between the two accuracy columns says how much the answers depend on retrieval.",
        "",
    ]
