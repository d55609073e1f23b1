"""What the suite's models share: strict models, the bounded numbers a person types, names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


def one_of(value: str, names: list[str]) -> str:
    """`value` when it is one of the registered `names` (kinds, retrieval methods)."""
    if value not in names:
        shown = [repr(n) for n in names]
        raise ValueError(f"expected one of {', '.join(shown[:-1])} or {shown[-1]} (got {value!r})")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


PositiveInt = Annotated[int, Field(ge=1)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# Per 1M tokens: the dearest model costs a few hundred dollars; more is a typo (1e308, .inf)
# that would turn every cost the run reports into nonsense after it has paid for the calls.
TokenPrice = Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]
# Dollars a person types (a wrong answer's cost, a budget): finite and below a trillion.
Dollars = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]

# Names become file and directory names (runs/<suite>/, results/<variant>.jsonl, MLflow).
MAX_NAME = 64
NAME = {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", "max_length": MAX_NAME}
