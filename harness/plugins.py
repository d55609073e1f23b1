"""Plugins: modules that register metrics, record scores, retrieval methods or fine-tuning backends.

A plugin is a module whose import runs registration lines (`@harness.metric(...)`,
`@harness.record_score(...)`, `@harness.retrieval_index(...)`, `@harness.finetune_backend(...)`).
It is found in two ways:

- the `harness` entry-point group of an installed package
  (`[project.entry-points.harness] my_metrics = "my_package.metrics"`);
- `HARNESS_PLUGINS`: comma-separated module paths (`HARNESS_PLUGINS=my_metrics,team.retrievers`),
  for a module that is importable but not packaged.

The built-ins load through the same path (`DEFAULT_PLUGINS`, like simonw/llm's default plugins):
importing each module registers what it holds, and `harness plugins` lists every plugin with
what it registered.

Where this sits: it imports the registries of `harness.score`, `harness.retrieve` and
`harness.finetune` and is imported by `harness.run`, `harness.check` and `harness.cli`
(pyproject's layers put it between those), so everything that validates or runs a suite
(`run_suite`, `harness check`, every command) sees the same registrations.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field

from harness.errors import SuiteError
from harness.finetune import backends
from harness.retrieve import indexes
from harness.score import registry, scorer

ENTRY_POINT_GROUP = "harness"
ENV_VAR = "HARNESS_PLUGINS"

# The modules whose import registers the built-ins (each package imports its own modules).
DEFAULT_PLUGINS = ("harness.score", "harness.retrieve.indexes", "harness.finetune")

KINDS = ("metrics", "record scores", "retrieval methods", "fine-tuning backends")


class PluginError(SuiteError):
    """A plugin could not be imported (exit 2: nothing was called)."""


@dataclass
class Plugin:
    name: str  # the entry point's name, or the module path
    module: str
    source: str  # "built-in", "entry point (<distribution> <version>)" or "HARNESS_PLUGINS"
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names


_LOADED: list[Plugin] | None = None


def _registrations() -> dict[str, dict[str, str]]:
    """Every registered name per kind, with the module that defines it."""
    return {
        "metrics": {n: m.fn.__module__ for n, m in registry.REGISTRY.items()},
        "record scores": {n: f.__module__ for n, f in scorer.RECORD_SCORES.items()},
        "retrieval methods": {n: c.__module__ for n, c in indexes.INDEXES.items()},
        "fine-tuning backends": {n: b.factory.__module__ for n, b in backends.BACKENDS.items()},
    }


def _owned(before: dict, after: dict, module: str) -> dict[str, list[str]]:
    """What a plugin registered: names new since `before`, or (a module imported earlier, so
    nothing is new) names defined in the plugin's own package."""
    top = module.split(".")[0] if not module.startswith("harness.") else module
    out = {}
    for kind in KINDS:
        names = [
            n
            for n, where in after[kind].items()
            if n not in before[kind] or where == module or where.startswith(top + ".")
        ]
        if names:
            out[kind] = sorted(names)
    return out


def _registries() -> dict[str, dict]:
    return {
        "metrics": registry.REGISTRY,
        "record scores": scorer.RECORD_SCORES,
        "retrieval methods": indexes.INDEXES,
        "fine-tuning backends": backends.BACKENDS,
    }


def _import(name: str, module: str, source: str, how_to_fix: str, ep=None) -> Plugin:
    before = _registrations()
    saved = {kind: dict(reg) for kind, reg in _registries().items()}
    try:
        if ep is not None and ep.attr:
            # `name = "pkg.mod:attr"`: the attribute must exist, or the entry point is wrong.
            try:
                ep.load()
            except AttributeError as e:
                raise PluginError(
                    f"plugin {name!r} ({source}): cannot load {ep.value!r} ({e}) — {how_to_fix}"
                ) from None
        else:
            importlib.import_module(module)
    except PluginError:
        raise
    except ModuleNotFoundError as e:
        raise PluginError(
            f"plugin {name!r} ({source}): cannot import {module!r} ({e}) — {how_to_fix}"
        ) from None
    except Exception as e:
        raise PluginError(
            f"plugin {name!r} ({source}): importing {module!r} failed: "
            f"{type(e).__name__}: {e} — fix the plugin or {how_to_fix}"
        ) from None
    after = _registrations()
    # A name another module registered first (a built-in's, another plugin's) would silently
    # change what suites naming it measure; refuse it and keep the first registration.
    for kind in KINDS:
        taken = sorted(n for n, where in before[kind].items() if after[kind][n] != where)
        if taken:
            for k, reg in _registries().items():
                reg.clear()
                reg.update(saved[k])
            names = ", ".join(map(repr, taken))
            owners = ", ".join(sorted({before[kind][n] for n in taken}))
            raise PluginError(
                f"plugin {name!r} ({source}): registers {kind} {names}, already registered by "
                f"{owners} — rename it in the plugin"
            )
    return Plugin(name, module, source, _owned(before, after, module))


def load_plugins() -> list[Plugin]:
    """Import the built-ins, the `harness` entry points and `HARNESS_PLUGINS`, once per process.

    PluginError (exit 2) names the plugin that fails to import and how to take it out."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    loaded = [
        _import(m, m, "built-in", "reinstall harness") for m in DEFAULT_PLUGINS
    ]  # built-ins first: a plugin's names are what is new after them
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        source = f"entry point of {dist.name} {dist.version}" if dist else "entry point"
        fix = f"reinstall {dist.name} or uninstall it" if dist else "reinstall its package"
        loaded.append(_import(ep.name, ep.module, source, fix, ep))
    named = dict.fromkeys(filter(None, (m.strip() for m in os.environ.get(ENV_VAR, "").split(","))))
    # A module an entry point already loaded, or named twice, is one plugin (listed once).
    for module in (m for m in named if m not in {p.module for p in loaded}):
        fix = f"check the module path in {ENV_VAR} (is it on PYTHONPATH?)"
        loaded.append(_import(module, module, ENV_VAR, fix))
    _LOADED = loaded
    return loaded
