"""Scoring: per-record scores, the metric registry, and the post-call stages (judge, embedding).

Importing the package registers the built-in metrics, the same way a plugin registers its own:
by importing the module that holds its `@metric` lines.
"""

from harness.score import judge, metrics, registry, similarity, strict  # noqa: F401  (registers the built-ins)
