"""`harness run --timings`: where a run's wall and CPU time went, phase by phase.

Phases follow the pipeline (start-up imports, suite/data, prompts/index, calls, post-call stages,
summary/guard, report/plots, tracking). CPU is this process's (`time.process_time`); worker
processes and the MLflow child are counted apart once they have exited (RUSAGE_CHILDREN), so
the figures add up to what `time` shows. Recording is always on (two clock reads a phase);
`--timings` prints the table and writes `timings.json` into the run directory.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness._util.jsonl import write_json_atomic


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc), so start-up imports are counted."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux: ru_maxrss is in KiB)."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None


def _children_cpu() -> float:
    try:
        import resource

        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime
    except (ImportError, OSError):
        return 0.0


@dataclass
class Phase:
    name: str
    wall_s: float
    cpu_s: float


@dataclass
class Timings:
    phases: list[Phase] = field(default_factory=list)
    _children0: float = field(default_factory=_children_cpu)
    # variant -> which transport sent its calls and requests per path (harness.calls.transport)
    transport: dict[str, dict] = field(default_factory=dict)
    workers_calls_cpu_s: float | None = None  # the worker pool's CPU while sending (no import)

    def __post_init__(self) -> None:
        # What ran before the pipeline: interpreter start-up and harness's own imports.
        age = _process_age()
        self.phases.append(Phase("start-up imports", age or 0.0, time.process_time()))

    @contextmanager
    def phase(self, name: str):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - w0, time.process_time() - c0)

    def add(self, name: str, wall_s: float, cpu_s: float) -> None:
        for p in self.phases:
            if p.name == name:  # a phase entered twice (e.g. tracking: warm-up, then logging)
                p.wall_s += wall_s
                p.cpu_s += cpu_s
                return
        self.phases.append(Phase(name, wall_s, cpu_s))

    def as_dict(self) -> dict[str, Any]:
        return {
            "phases": [
                {"name": p.name, "wall_s": round(p.wall_s, 4), "cpu_s": round(p.cpu_s, 4)}
                for p in self.phases
            ],
            "process_cpu_s": round(time.process_time(), 4),
            "children_cpu_s": round(_children_cpu() - self._children0, 4),
            "process_peak_rss_mb": _peak_rss_mb(),
            "imported": sorted(m for m in HEAVY if m in sys.modules),
            "transport": self.transport,
            "workers_calls_cpu_s": self.workers_calls_cpu_s,
        }

    def table(self) -> str:
        d = self.as_dict()
        width = max(len(p.name) for p in self.phases)
        lines = [f"{'phase':<{width}}  {'wall s':>7}  {'CPU s':>7}"]
        lines += [f"{p.name:<{width}}  {p.wall_s:7.2f}  {p.cpu_s:7.2f}" for p in self.phases]
        lines.append(
            f"{'this process':<{width}}  {'':>7}  {d['process_cpu_s']:7.2f}"
            f"\n{'workers + children':<{width}}  {'':>7}  {d['children_cpu_s']:7.2f}"
        )
        lines.append("heavy modules loaded here: " + (", ".join(d["imported"]) or "none"))
        for name, t in sorted(self.transport.items()):
            lines.append(
                f"transport of {name}: {t['path']} — {t['lean']} requests lean, "
                f"{t['litellm']} through litellm"
            )
        return "\n".join(lines)

    def write(self, run_dir) -> None:
        write_json_atomic(run_dir / "timings.json", self.as_dict())


# What a run should load only when it needs it (a fully cached run: none of the first three).
HEAVY = ("litellm", "openai", "tiktoken", "mlflow", "matplotlib", "scipy", "sklearn", "pandas")
