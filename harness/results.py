"""The run's results as typed values every layer reads: `Record`, `Hypothesis`, `Verdict`,
`Summary` (pydantic v2, like Inspect's `EvalLog`).

Files of a run directory (docs/concepts/results.md):

- results/<variant>.jsonl: one `Record` per line, per (example, repeat).
- summary.json: one `Summary`. `hypotheses` is ALWAYS a list (a single `guard:` mapping is a
  list of one; none without a guard); `guard.verdicts` holds one `Verdict` per hypothesis, by
  its key. Built once by the stage that owns each part (harness.stats.summary the figures,
  harness.decide.guard the verdicts) and validated on read (`read_summary`).

A variant's figures are typed (`VariantFigures`: metrics, deltas, calls, errors, money);
the other models are open (`extra="allow"`): the sections other stages own (value, break-even, ledger entry, judge, retrieval, sequential, forgetting, amendments) travel
as they are and keep their documented JSON shape, so a reader of summary.json written by this
version and by the one before (schema_version 1) gets the same fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError

SCHEMA_VERSION = 2
"""summary.json's version. 1: `hypothesis` only (a mapping, or {"hypotheses": [...]} for a
list). 2: adds `hypotheses`, always a list; readers upgrade version 1 files on read."""

NET_MONTHLY_VALUE = "net_monthly_value"  # the dollar metric (harness.suite defines it too)

VerdictName = Literal["pass", "fail", "inconclusive", "abandon"]


class _Open(BaseModel):
    """Keeps keys it does not name (other stages' sections), validates the ones it does."""

    # Built on first use, not at import: the tracking child imports this module and must
    # answer EOF at once (tests/track/test_tracking_child.py).
    model_config = ConfigDict(extra="allow", defer_build=True)


class Record(_Open):
    """One line of results/<variant>.jsonl: one call of one variant on one test example.

    id, repeat: the example's id and the sample index (`repeats:`); input: the example's input
    field (a mapping when the suite names several); expected: its target; output: the model's
    raw text; parsed: the answer the scorer read from it; scores / reasons: per-metric scores
    and why each is not full; error: why the call gave no answer (None when it did);
    cost_usd: the call at list price (× price_factor: 0.5 for Batch API answers)."""

    id: str
    repeat: int = 0
    model: str | None = None
    input: Any = None
    expected: Any = None
    output: str | None = None
    parsed: Any = None
    scores: dict[str, Any] = Field(default_factory=dict)
    reasons: dict[str, Any] = Field(default_factory=dict)
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    error: str | None = None
    retries: int = 0


class _Closed(BaseModel):
    """A figure whose keys are all named here: an unknown key is an error on read."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Figure(_Closed):
    """One metric of one variant: its value and interval (None where the metric has none:
    operational metrics, or no answer to score)."""

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


class DeltaFigure(Figure):
    """A variant − baseline difference on one metric, on the examples both have. `interval`:
    "newcombe-paired" (0/1 metric, with McNemar's 2×2 `table`) or "bootstrap" (with
    `degenerate` when its resamples did not vary and it was floored); `p_method` how
    `p_value` was found; `confidence` the interval's level (absent for operational metrics,
    which get the plain difference)."""

    p_value: float | None = None
    p_method: str | None = None
    interval: str | None = None
    confidence: float | None = None
    table: list[int] | None = None
    degenerate: bool | None = None


class Training(_Open):
    """A trained variant's training cost (None: unknown) and, from `harness finetune`, its job."""

    cost_usd: float | None = None
    job: dict[str, Any] | None = None


class VariantFigures(_Open):
    """summary.json's `variants[name]`: one variant's figures, built by harness.stats.summary.

    metrics: each declared metric with its interval; delta: variant − baseline per metric
    (absent on the baseline); calls, errors (`errors_by_reason`, the provider's `top_errors`),
    retries; money (`cost_usd` at current prices, `spent_usd` in this run, `cost_per_request`
    over priced calls: None when no answered call is priced or none was answered);
    latency percentiles; the engine's `notes`; per-class figures (classification), retrieval
    quality (retrieving variants) and training (trained variants). Open: a later stage may
    add a section of its own."""

    kind: str | None = None
    model: str | None = None
    base_model: str | None = None
    n_examples: int = 0
    n_calls: int = 0
    n_errors: int = 0
    error_rate: float = 0.0
    cached_calls: int = 0
    retries: int = 0
    retried_calls: int = 0
    cost_usd: float | None = None
    spent_usd: float | None = None
    unpriced_calls: int = 0
    cost_per_request: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    metrics: dict[str, Figure] = Field(default_factory=dict)
    delta: dict[str, DeltaFigure] | None = None
    per_class: dict[str, dict[str, float | int | None]] | None = None
    errors_by_reason: dict[str, int] = Field(default_factory=dict)
    top_errors: dict[str, int] | None = None
    training: Training | None = None
    retrieval: dict[str, Any] | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    notes: list[str] = Field(default_factory=list)

    @property
    def answered(self) -> int:
        """Calls that gave an answer (the ones a cost or a quality figure can come from)."""
        return self.n_calls - self.n_errors

    def metric(self, name: str) -> Figure:
        """The metric's figure (an empty one when the variant has none)."""
        return self.metrics.get(name) or Figure()

    def figures(self) -> dict[str, Any]:
        """The JSON mapping of summary.json (only the keys the stage set, as it wrote them)."""
        return self.model_dump(mode="json", exclude_unset=True)


def figures_of(figures: VariantFigures | Mapping[str, Any] | None) -> VariantFigures:
    """One variant's figures as the model: summary.json's mapping (the in-memory summary of a
    run, before it is written) validated, an absent variant as empty figures."""
    if isinstance(figures, VariantFigures):
        return figures
    return VariantFigures.model_validate(dict(figures or {}))


def variant_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """One variant's figures validated as `VariantFigures` and back to summary.json's mapping:
    the stage that builds them fails here, not a reader later."""
    return VariantFigures.model_validate(figures).figures()


class Hypothesis(_Open):
    """One pre-registered claim: `candidate` − `baseline` on `metric`, judged by `test` at
    `margin` (metric units; dollars a month for net_monthly_value) and `confidence`. `key`
    names its verdict (the candidate's name where that is unique)."""

    key: str
    candidate: str
    baseline: str
    metric: str
    test: Literal["superiority", "non-inferiority"]
    margin: float
    confidence: float

    @property
    def fingerprint(self) -> str:
        """Short hash of (metric, test, margin, confidence), as harness.decide.rule's."""
        keys: dict[str, object] = {
            "metric": self.metric,
            "test": self.test,
            "margin": self.margin,
            "confidence": self.confidence,
        }
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]


class Delta(_Open):
    """A paired difference candidate − baseline: value with its interval at `confidence`."""

    metric: str | None = None
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    confidence: float | None = None
    threshold: float | None = None


class Verdict(_Open):
    """One hypothesis's verdict. `verdict` is the outcome after the ledger's rule (abandon);
    `status` the rule's outcome on the interval alone; `sentence` the manager's sentence;
    `required_n` the test-set size that would decide an inconclusive one; `flags`:
    "error_rate" (could not be judged), "moved_goalposts", "amended" (a pass under an amended
    protocol: harness.decide.protocol)."""

    verdict: VerdictName
    status: VerdictName | None = None
    hypothesis: Hypothesis | None = None
    delta: Delta = Field(default_factory=Delta)
    required_n: int | None = None
    n_examples: int | None = None
    ledger: dict[str, Any] = Field(default_factory=dict)
    limit: str | None = None
    flags: list[str] = Field(default_factory=list)
    sentence: str = ""
    headline: str = ""


class Guard(_Open):
    """summary.json's `guard`: the verdicts by hypothesis key and the family's settings."""

    correction: str | None = None
    fingerprint: str | None = None
    allow_inconclusive: bool = False
    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    moved_goalposts: dict[str, Any] | None = None


class Summary(_Open):
    """summary.json. `variants[name]` holds each variant's figures (metrics with CIs, delta vs
    the baseline, calls, errors, costs); `hypotheses` the pre-registered claims (a list,
    always); `guard` the verdicts (None without a guard); `value` the months in dollars
    (with `value:`: `variants`, `vs_baseline`, `not_valued`); `break_even` per trained variant;
    `exit_code` the run's."""

    schema_version: int
    suite: str
    run_id: str | None = None
    task: str | None = None
    baseline: str | None = None
    n_examples: int | None = None
    metrics: list[str] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    variants: dict[str, VariantFigures] = Field(default_factory=dict)
    guard: Guard | None = None
    value: dict[str, Any] | None = None
    break_even: dict[str, Any] = Field(default_factory=dict)
    exit_code: int | None = None

    def hypothesis(self, key: str) -> Hypothesis | None:
        return next((h for h in self.hypotheses if h.key == key), None)

    def quality_metrics(self) -> list[str]:
        """The guard's quality metrics in hypothesis order (net_monthly_value is dollars)."""
        out: list[str] = []
        for h in self.hypotheses:
            if h.metric != NET_MONTHLY_VALUE and h.metric not in out:
                out.append(h.metric)
        return out


def hypotheses_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The `hypotheses` list of a summary of any version: version 2 has it; version 1 kept a
    single guard's mapping (its candidates are the verdicts' keys) or {"hypotheses": [...]}."""
    if isinstance(summary.get("hypotheses"), list):
        return list(summary["hypotheses"])
    hyp = summary.get("hypothesis")
    if not isinstance(hyp, dict):
        return []
    if isinstance(hyp.get("hypotheses"), list):
        return list(hyp["hypotheses"])
    verdicts = (summary.get("guard") or {}).get("verdicts") or {}
    out = []
    for key, v in verdicts.items():
        own = (v.get("hypothesis") or {}) if isinstance(v, dict) else {}
        out.append(
            {
                "key": key,
                "candidate": own.get("candidate", key),
                "baseline": own.get("baseline") or summary.get("baseline") or "",
                **{k: hyp.get(k) for k in ("metric", "test", "margin", "confidence")},
            }
        )
    return out


def upgrade(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary.json mapping of version 1 or 2 as version 2 (a copy)."""
    out = dict(summary)
    out["hypotheses"] = hypotheses_of(summary)
    out["schema_version"] = max(int(summary.get("schema_version") or 0), SCHEMA_VERSION)
    return out


def parse_summary(data: Any, source: str | Path = "summary.json") -> Summary:
    """Validate a summary.json mapping (upgrading version 1). Raises HarnessError (exit 2)
    naming `source` and what to do, for a file of another tool, a newer harness or a broken
    one, never a traceback."""
    if not isinstance(data, dict) or "schema_version" not in data or "suite" not in data:
        raise HarnessError(
            f"{source}: not a harness summary.json (no schema_version / suite) — pass the "
            "directory of a `harness run` (runs/<suite>/<run-id>)"
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise HarnessError(
            f"{source}: schema_version {version!r} is newer than this harness reads "
            f"({SCHEMA_VERSION}) — upgrade harness (pip install -U harness) to read it"
        )
    try:
        return Summary.model_validate(upgrade(data))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HarnessError(
            f"{source}: {where}: {first['msg']} — the file was edited or written by an older "
            "harness; re-create it with `harness run SUITE.yaml --resume RUN_ID`"
        ) from None


def as_summary(summary: Summary | dict[str, Any]) -> Summary:
    """A renderer's input as a `Summary`: the in-memory dict of a run (validated), or one."""
    return summary if isinstance(summary, Summary) else parse_summary(summary)


def family_fingerprint(hypotheses: list[dict[str, Any]]) -> str:
    """One short hash of a whole `guard:` list (every hypothesis's key and pre-registration),
    so two suites with different hypotheses never share it."""
    keys = ("key", "candidate", "baseline", "metric", "test", "margin", "confidence")
    canonical = json.dumps([{k: h.get(k) for k in keys} for h in hypotheses], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def read_summary(path: str | Path) -> Summary:
    """summary.json read back and validated (parse_summary), or a HarnessError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HarnessError(f"{path}: cannot be read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from None
    return parse_summary(data, path)
