"""The progress bar of `harness run`: per-variant done/total, errors and spend on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class Progress:
    """Per-variant done/total, errors and spend, on stderr; silent when not a terminal."""

    def __init__(self, totals: dict[str, int], done: dict[str, set], *, console=None, enabled=None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.counts = {
            name: {"done": len(done.get(name, ())), "errors": 0, "cost": 0.0} for name in totals
        }
        self._bar = None
        self._tasks = {}
        if not self.enabled:
            return
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        for name, total in totals.items():
            self._tasks[name] = self._bar.add_task(
                name, total=total, completed=self.counts[name]["done"], errors=0, cost=0.0
            )
        self._bar.start()

    def advance(self, variant: str, *, error: bool, cost: float | None) -> None:
        c = self.counts[variant]
        c["done"] += 1
        c["errors"] += int(error)
        c["cost"] += cost or 0.0
        if self._bar is not None:
            self._bar.update(self._tasks[variant], advance=1, errors=c["errors"], cost=c["cost"])

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
