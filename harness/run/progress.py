"""What `harness run` shows on stderr while it works: a line for each slow phase ("loading
models…", "building bm25 index (10k chunks)…", "logging to MLflow…"), then per-variant bars and
an overall line with ETA and spend, retries shown as they happen. Silent when not a terminal."""

from __future__ import annotations

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

    def __init__(self, totals: dict[str, int], done: dict[str, set], *, console=None, enabled=None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.counts = {
            name: {"done": len(done.get(name, ())), "errors": 0, "cost": 0.0, "retries": 0}
            for name in totals
        }
        self._live_retries = dict.fromkeys(totals, 0)
        self._bar = None
        self._tasks = {}
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
