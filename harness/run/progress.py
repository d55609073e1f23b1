"""What `harness run` shows on stderr while it works: a line for each slow phase ("loading
models…", "building bm25 index (10k chunks)…", "logging to MLflow…"), then per-variant bars and
an overall line with ETA and spend, retries shown as they happen. When stderr is not a terminal
(a CI log, a file) the bars are replaced by one plain line every HARNESS_PROGRESS_EVERY_S seconds
(60 by default; 0 turns it off), so a long run is never silent there either."""

from __future__ import annotations

import math
import os
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

OVERALL = "(all)"  # not a valid variant name: never collides with one
EVERY_ENV = "HARNESS_PROGRESS_EVERY_S"
DEFAULT_EVERY_S = 60.0


def plain_every() -> float:
    """Seconds between plain progress lines off a terminal (0: none)."""
    raw = os.environ.get(EVERY_ENV, "").strip()
    try:
        every = float(raw) if raw else DEFAULT_EVERY_S
    except ValueError:
        return DEFAULT_EVERY_S
    # No time is >= nan: kept, it would turn the line off without a word.
    return DEFAULT_EVERY_S if math.isnan(every) else max(every, 0.0)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Phases:
    """One line per slow phase, so a pause is never silent; nothing when not enabled."""

    def __init__(self, console=None, enabled=None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled

    def say(self, text: str) -> None:
        if self.enabled:
            self.console.print(f"harness: {text}", markup=False, highlight=False)


class Progress:
    """Per-variant done/total, errors, retries and spend; an overall line with ETA and spend."""

    def __init__(
        self,
        totals: dict[str, int],
        done: dict[str, set],
        *,
        console=None,
        enabled=None,
        started: float | None = None,
    ):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.counts = {
            name: {"done": len(done.get(name, ())), "errors": 0, "cost": 0.0, "retries": 0}
            for name in totals
        }
        self._live_retries = dict.fromkeys(totals, 0)
        self._bar = None
        self._tasks = {}
        self._totals = totals
        # Off a terminal, unless the caller chose (show_progress): a plain line now and then.
        self._every = plain_every() if enabled is None and not self.enabled else 0.0
        # `started`: when an earlier part of the same sending began (sequential looks).
        self._last = time.monotonic()
        self.started = self._last if started is None else started
        if not self.enabled:
            return
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("retries {task.fields[retries]}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        rows = {**totals, OVERALL: sum(totals.values())} if len(totals) > 1 else totals
        for name, total in rows.items():
            done_n = (
                sum(c["done"] for c in self.counts.values())
                if name == OVERALL and name not in totals
                else self.counts[name]["done"]
            )
            self._tasks[name] = self._bar.add_task(
                name, total=total, completed=done_n, errors=0, retries=0, cost=0.0
            )
        self._bar.start()

    def retry(self, variant: str) -> None:
        """A call of `variant` is about to be retried (429 / 5xx / timeout): show it now."""
        if variant in self._live_retries:
            self._live_retries[variant] += 1
            self._refresh(variant, advance=0)

    def advance(self, variant: str, *, error: bool, cost: float | None, retries: int = 0) -> None:
        c = self.counts[variant]
        c["done"] += 1
        c["errors"] += int(error)
        c["cost"] += cost or 0.0
        c["retries"] += retries
        self._refresh(variant, advance=1)
        if self._every:
            now = time.monotonic()
            if now - self._last >= self._every:
                self._last = now
                self.console.print(self.plain_line(now), markup=False, highlight=False)

    def plain_line(self, now: float) -> str:
        """`harness: 120/600 calls (20%), 2 errors, 1 retries, $0.0123 spent, 2m10s elapsed`."""
        done = sum(c["done"] for c in self.counts.values())
        total = sum(self._totals.values())
        errors = sum(c["errors"] for c in self.counts.values())
        retries = sum(self.shown_retries(v) for v in self.counts)
        cost = sum(c["cost"] for c in self.counts.values())
        share = f" ({done / total:.0%})" if total else ""
        return (
            f"harness: {done}/{total} calls{share}, {errors} errors, {retries} retries, "
            f"${cost:.4f} spent, {_clock(now - self.started)} elapsed"
        )

    def shown_retries(self, variant: str) -> int:
        # Live (in-process calls) or counted when a worker's answer arrives, whichever knows more.
        return max(self._live_retries[variant], self.counts[variant]["retries"])

    def _refresh(self, variant: str, advance: int) -> None:
        if self._bar is None:
            return
        c = self.counts[variant]
        self._bar.update(
            self._tasks[variant],
            advance=advance,
            errors=c["errors"],
            retries=self.shown_retries(variant),
            cost=c["cost"],
        )
        if OVERALL in self._tasks and variant != OVERALL:
            self._bar.update(
                self._tasks[OVERALL],
                advance=advance,
                errors=sum(x["errors"] for x in self.counts.values()),
                retries=sum(self.shown_retries(v) for v in self.counts),
                cost=sum(x["cost"] for x in self.counts.values()),
            )

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
