"""Markdown cells and tables of report.md: numbers, intervals, money, escaped text."""

from __future__ import annotations

import json
import re
from typing import Any

from harness.stats.numbers import value, with_ci

CELL_CHARS = 160


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def md_money(x: Any, v: dict[str, Any]) -> str:
    """A variant's dollars, marked when some of its calls have no price."""
    k = v.get("unpriced_calls")
    return md_num(x, "cost") + (f" (partial: {k} unpriced)" if k and x is not None else "")


def md_num(x: Any, metric: str = "") -> str:
    return value(x, metric)


def md_ci(m: dict[str, Any] | None, metric: str, *, delta: bool = False) -> str:
    return with_ci(m, metric, delta=delta)


def md_cell(value: Any) -> str:
    """A table cell: one line, cut at CELL_CHARS, escaped."""
    text = as_text(value).replace("\r", " ").replace("\n", " ")
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    return md_inline(text)


def md_inline(value: Any) -> str:
    """One line of text, escaped but whole (verdict sentences are never cut)."""
    text = as_text(value).replace("\r", " ").replace("\n", " ")
    # Pipes end a table cell; backticks/asterisks would turn model output into formatting.
    return re.sub(r"([|\\`*_\[\]<>])", r"\\\1", text)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]
