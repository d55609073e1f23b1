"""The pre-registered hypotheses: `guard:` entries as written (`Guard`, `Sequential`), each
expanded to a `Hypothesis` per guarded variant, and what a wrong answer costs (`volume:`,
`value:`) for the dollar guard metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from harness.suite.base import Dollars, NonNegFloat, PositiveInt, Strict

# The guard metric in dollars: (variant − baseline) of the monthly value `value:` defines.
NET_MONTHLY_VALUE = "net_monthly_value"


class Sequential(Strict):
    """Evaluate in stages and stop calling models once every hypothesis is decided."""

    looks: Annotated[int, Field(ge=2, le=20)] = Field(
        description="Number of looks (stages) the test set is split into; the last is the full set."
    )


# Above this share of failed calls a run cannot be judged (exit 3), guarded or not.
DEFAULT_MAX_ERROR_RATE = 0.02


class Guard(Strict):
    metric: str = Field(
        description="A declared quality metric, or net_monthly_value (needs `value:` and `volume:`)."
    )
    test: Literal["superiority", "non-inferiority"] = "superiority"
    margin: NonNegFloat = Field(
        description="Absolute, in metric units (0.05 = 5 points of a rate; dollars a month for net_monthly_value)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    candidate: str | None = Field(
        None, description="The one variant this hypothesis is about (instead of applies_to)."
    )
    baseline: str | None = Field(
        None, description="The variant it is compared with (default: the suite's baseline)."
    )
    applies_to: list[str] | None = Field(
        None, description="Guarded variants (default: every fine-tuned variant)."
    )
    max_iterations: PositiveInt | None = None
    budget_usd: Dollars | None = None
    max_error_rate: float = Field(DEFAULT_MAX_ERROR_RATE, ge=0, le=1)
    correction: Literal["holm", "none"] = Field(
        "holm",
        description="Family-wise error control across several hypotheses: holm (default) or none. Every entry must say the same.",
    )
    sequential: Sequential | None = Field(
        None,
        description="Group-sequential design: stop calling models once every hypothesis is decided. Every entry must say the same.",
    )


@dataclass(frozen=True)
class Hypothesis:
    """One pre-registered claim: `candidate` vs `baseline` on `metric`. A `guard:` entry with
    several guarded variants is one hypothesis per variant; `key` names it in summary.json's
    verdicts (the candidate's name where that is unique)."""

    key: str
    candidate: str
    baseline: str
    metric: str
    test: str
    margin: float
    confidence: float
    max_iterations: int | None
    budget_usd: float | None
    max_error_rate: float
    index: int | None  # position in the `guard:` list (None: a single mapping)

    @property
    def location(self) -> tuple:
        return ("guard",) if self.index is None else ("guard", self.index)

    def as_dict(self) -> dict[str, Any]:
        """The pre-registration: what the fingerprint and moved-goalposts check compare."""
        return {
            "metric": self.metric,
            "test": self.test,
            "margin": self.margin,
            "confidence": self.confidence,
        }


class Volume(Strict):
    monthly_requests: Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)]


class Value(Strict):
    """What a wrong answer costs the business: the monthly cost of a variant is
    volume × (API cost per request + error rate × error cost) + training / amortise_months."""

    error_cost_usd: Dollars = Field(description="Cost of one wrong answer, in dollars.")
    per_class: dict[str, Dollars] | None = Field(
        None,
        description="Classification: the cost of a wrong answer by its true class (others cost error_cost_usd).",
    )
    amortise_months: Annotated[float, Field(gt=0, le=1200, allow_inf_nan=False)] = Field(
        12, description="Months over which a variant's training cost is spread."
    )
