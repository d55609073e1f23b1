"""The suite: the YAML contract (models), reading it with positions, and resolving it."""

from harness.suite.model import (
    EXAMPLES,
    NET_MONTHLY_VALUE,
    CorpusColumn,
    FewShot,
    Hypothesis,
    Pricing,
    RateLimit,
    Retrieval,
    Suite,
    SuiteFile,
    Variant,
    VariantSpec,
    json_schema,
    suite_hash,
)
from harness.suite.resolve import load_suite, resolve

__all__ = [
    "EXAMPLES",
    "NET_MONTHLY_VALUE",
    "CorpusColumn",
    "Hypothesis",
    "FewShot",
    "Pricing",
    "RateLimit",
    "Retrieval",
    "Suite",
    "SuiteFile",
    "Variant",
    "VariantSpec",
    "json_schema",
    "load_suite",
    "resolve",
    "suite_hash",
]
