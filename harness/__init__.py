"""harness: decide between prompt engineering, RAG and fine-tuning with a pre-registered hypothesis.

The public API is `__all__`; each name is imported on first use (module `__getattr__`), so
`import harness` and `harness --help` stay fast. Everything else is internal and may change.

    import harness
    outcome = harness.run_suite("suite.yaml", harness.RunOptions(limit=20))

Plugins register with the decorators (`harness.metric`, `harness.record_score`,
`harness.retrieval_index`, `harness.finetune_backend`); see docs/how-to/plugins.md.
"""

import importlib
import os

# litellm fetches its price list from the internet at import unless told otherwise; the bundled
# copy is what every run must use (reproducible costs, no network at import).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS = {
    # running a suite
    "run_suite": ("harness.run.pipeline", "run_suite"),
    "RunOptions": ("harness.run.options", "RunOptions"),
    "RunOutcome": ("harness.run.pipeline", "RunOutcome"),
    # typed results (harness/results.py)
    "Record": ("harness.results", "Record"),
    "Summary": ("harness.results", "Summary"),
    "Hypothesis": ("harness.results", "Hypothesis"),
    "Verdict": ("harness.results", "Verdict"),
    # errors
    "HarnessError": ("harness.errors", "HarnessError"),
    "SuiteError": ("harness.errors", "SuiteError"),
    # plugins: the registration decorators and what they are given
    "metric": ("harness.score.registry", "metric"),
    "Decomposed": ("harness.score.registry", "Decomposed"),
    "Table": ("harness.score.table", "Table"),
    "record_score": ("harness.score.scorer", "record_score"),
    "Seen": ("harness.score.scorer", "Seen"),
    "retrieval_index": ("harness.retrieve.indexes", "index"),
    "TextIndex": ("harness.retrieve.indexes", "TextIndex"),
    "finetune_backend": ("harness.finetune.backends", "backend"),
    "FinetuneSpec": ("harness.finetune.backends", "FinetuneSpec"),
    "JobState": ("harness.finetune.backends", "JobState"),
    "load_plugins": ("harness.plugins", "load_plugins"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'harness' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # the next lookup skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
