"""The suite's models: `SuiteFile` is the YAML as written (strict: unknown keys are errors),
`Suite` the resolved suite with complete `Variant`s (harness.suite.resolve builds it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from harness.errors import SuiteError
from harness.suite._yaml import format_key, locate
from harness.suite.base import MAX_NAME, NAME, Dollars, NonNegFloat, PositiveInt, Strict, TokenPrice
from harness.suite.hypotheses import (
    DEFAULT_MAX_ERROR_RATE,
    NET_MONTHLY_VALUE,
    Guard,
    Hypothesis,
    Sequential,
    Value,
    Volume,
)
from harness.suite.kinds import KINDS
from harness.suite.variants import (
    DEFAULT_TIMEOUT_S,
    EXAMPLES,
    INHERITED,
    Chunking,
    CorpusColumn,
    Defaults,
    Distill,
    FewShot,
    Finetune,
    Forgetting,
    Pricing,
    RateLimit,
    ResponseFormat,
    Retrieval,
    Training,
    TrainingJob,
    Variant,
    VariantSpec,
)

# The models of the suite's parts live in harness.suite.base, .variants and .hypotheses; their
# names stay importable from here.
__all__ = [
    "DEFAULT_MAX_ERROR_RATE",
    "DEFAULT_TIMEOUT_S",
    "EXAMPLES",
    "INHERITED",
    "MAX_NAME",
    "NAME",
    "NET_MONTHLY_VALUE",
    "Chunking",
    "CorpusColumn",
    "DataSpec",
    "Defaults",
    "DiagnoseSettings",
    "Distill",
    "Dollars",
    "FewShot",
    "Finetune",
    "Forgetting",
    "Guard",
    "Hypothesis",
    "MetricEntry",
    "NonNegFloat",
    "PositiveInt",
    "Pricing",
    "RateLimit",
    "ResponseFormat",
    "Retrieval",
    "Sample",
    "Sequential",
    "Strict",
    "Suite",
    "SuiteFile",
    "TokenPrice",
    "Training",
    "TrainingJob",
    "Value",
    "Variant",
    "VariantSpec",
    "Volume",
    "json_schema",
    "suite_hash",
]


class Sample(Strict):
    """Deterministic subset of the test split."""

    n: PositiveInt = Field(description="Number of test examples to keep.")
    seed: int = Field(0, description="Seed of the draw; the same seed gives the same examples.")
    stratify: bool = Field(False, description="Keep the class proportions of the full test set.")


class DataSpec(Strict):
    test: str = Field(
        description="Test split (csv, jsonl, json list of records, parquet), relative to the suite file."
    )
    train: str | None = Field(
        None,
        description="Train split: few-shot pool, readiness checks, fine-tune export. Never scored.",
    )
    input: str | list[str] = Field(description="Field(s) of each record available to templates.")
    target: str | None = Field(
        None,
        description="Field holding the expected answer (label, JSON record or reference text).",
    )
    id: str | None = Field(
        None, description="Field holding a stable example id (default: a hash of the record)."
    )
    gold: str | None = Field(
        None, description="Field naming the gold passage id(s) for retrieval metrics (RAG)."
    )
    sample: Sample | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


MetricEntry = str | dict[str, dict[str, Any] | str]


class DiagnoseSettings(Strict):
    """What `harness diagnose --probe stronger` asks (the suite's own choice of a bigger model)."""

    stronger: str | None = Field(
        None,
        description="A stronger model (litellm id) for `harness diagnose --probe stronger`, e.g. openai/gpt-4o.",
    )


class SuiteFile(Strict):
    """The suite YAML as written."""

    name: str = Field(**NAME)
    description: str | None = None
    task: Literal["classification", "extraction", "generation"]
    data: DataSpec
    labels: Literal["from-data"] | list[str] | None = None
    output_schema: str | None = Field(
        None, description="JSON Schema file; enables format_compliance."
    )
    metrics: list[MetricEntry] = Field(min_length=1)
    defaults: Defaults = Field(default_factory=Defaults)
    variants: list[VariantSpec] = Field(min_length=1)
    baseline: str | None = None
    guard: Guard | list[Guard] | None = Field(
        None,
        description="The pre-registered hypothesis, or a list of them (Holm across the list unless `correction: none`).",
    )
    volume: Volume | None = None
    value: Value | None = None
    diagnose: DiagnoseSettings | None = None

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("empty label list — list the labels, or write `labels: from-data`")
            dupes = sorted({x for x in v if v.count(x) > 1})
            if dupes:
                raise ValueError(f"duplicate labels {dupes}")
        return v

    @field_validator("guard")
    @classmethod
    def _guard_list(cls, v):
        if isinstance(v, list):
            if not v:
                # An empty list would run every variant unguarded while the suite looks guarded.
                raise ValueError(
                    "empty guard list — write at least one hypothesis, or remove `guard:`"
                )
            dumped = [g.model_dump(exclude_unset=True) for g in v]
            for i, g in enumerate(dumped):
                if g in dumped[:i]:
                    raise ValueError(
                        f"guard[{i}] repeats guard[{dumped.index(g)}] word for word — a "
                        "duplicate hypothesis would be counted twice in the Holm correction; "
                        "remove one"
                    )
        return v


# ---------------------------------------------------------------- resolved suite


class Suite(BaseModel):
    """A loaded, resolved suite: paths absolute, variants complete."""

    path: Path
    display_path: str
    raw: dict[str, Any]
    spec: SuiteFile
    variants: list[Variant]
    output_schema: dict[str, Any] | None
    locations: dict[tuple, tuple[int, int]]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def baseline(self) -> str:
        return self.spec.baseline or self.variants[0].name

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve_path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else (self.root / p)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise SuiteError(
            f"unknown variant {name!r} — choose one of {[v.name for v in self.variants]}"
        )

    @property
    def guards(self) -> list[Guard]:
        """The `guard:` entries: a single mapping is a one-element list."""
        g = self.spec.guard
        if g is None:
            return []
        return list(g) if isinstance(g, list) else [g]

    @property
    def correction(self) -> str:
        return self.guards[0].correction if self.guards else "holm"

    @property
    def sequential(self) -> Sequential | None:
        return self.guards[0].sequential if self.guards else None

    def hypotheses(self) -> list[Hypothesis]:
        """Every guard entry expanded to one hypothesis per guarded variant, in suite order."""
        listed = isinstance(self.spec.guard, list)
        rows = []
        for i, g in enumerate(self.guards):
            baseline = g.baseline or self.baseline
            if g.candidate is not None:
                names = [g.candidate]
            elif g.applies_to is not None:
                names = list(g.applies_to)
            else:
                names = [
                    v.name for v in self.variants if KINDS[v.kind].trained and v.name != baseline
                ]
            rows += [(i if listed else None, g, n, baseline) for n in names]
        out = []
        for index, g, name, baseline in rows:
            key = name
            if sum(r[2] == name for r in rows) > 1:
                key = f"{name} vs {baseline}"
                if sum(r[2] == name and r[3] == baseline for r in rows) > 1:
                    key += f" ({g.metric})"
            out.append(
                Hypothesis(
                    key=key,
                    candidate=name,
                    baseline=baseline,
                    metric=g.metric,
                    test=g.test,
                    margin=g.margin,
                    confidence=g.confidence,
                    max_iterations=g.max_iterations,
                    budget_usd=g.budget_usd,
                    max_error_rate=g.max_error_rate,
                    index=index,
                )
            )
        return out

    def guarded(self) -> list[str]:
        """The variants some hypothesis is about (each a lineage in the ledger), in order."""
        return list(dict.fromkeys(h.candidate for h in self.hypotheses()))

    def max_error_rate(self, name: str) -> float:
        """The provider-error level a variant must stay under to be judged or valued: the
        strictest of the hypotheses naming it, else of any hypothesis, else the default."""
        hyps = self.hypotheses()
        rates = [h.max_error_rate for h in hyps if name in (h.candidate, h.baseline)] or [
            h.max_error_rate for h in hyps
        ]
        return min(rates, default=DEFAULT_MAX_ERROR_RATE)

    def hypothesis(self) -> dict[str, Any] | None:
        """summary.json's `hypothesis`: the guard's (metric, test, margin, confidence) for a
        single `guard:` mapping as before; for a list, one entry per hypothesis with its key,
        candidate and baseline."""
        hyps = self.hypotheses()
        if not self.guards:
            return None
        if not isinstance(self.spec.guard, list):
            return self.guards[0].model_dump(include={"metric", "test", "margin", "confidence"})
        return {
            "hypotheses": [
                {"key": h.key, "candidate": h.candidate, "baseline": h.baseline, **h.as_dict()}
                for h in hyps
            ],
            "correction": self.correction,
        }

    def fail(self, message: str, key: tuple = ()) -> SuiteError:
        line, col = self.locate(key)
        return SuiteError(
            message, file=self.display_path, key=format_key(key) or None, line=line, column=col
        )

    def locate(self, key: tuple) -> tuple[int | None, int | None]:
        return locate(self.locations, key)


def suite_hash(suite: Suite) -> str:
    canonical = json.dumps(suite.raw, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the suite file, for editors (`# yaml-language-server: $schema=...`)."""
    schema = SuiteFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "harness suite"
    return schema
