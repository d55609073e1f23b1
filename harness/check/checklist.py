"""`harness check`: validate the suite and its data without calling a model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.check.hygiene import DEFAULT_NEAR_DUP_THRESHOLD, check_hygiene
from harness.check.readiness import FAIL, PASS, WARN, power_lines, readiness_lines
from harness.data.dataset import Dataset, load_dataset
from harness.data.lineage import protocol_path
from harness.decide.protocol import (
    AMENDMENT,
    against_registered,
    amendments,
    missing_registration,
)
from harness.finetune.backends import finetune_spec
from harness.plugins import load_plugins
from harness.prompt.templates import validate_templates
from harness.retrieve import validate_retrieval
from harness.score.registry import validate_suite
from harness.suite import Suite, load_suite
from harness.suite.secrets import literal_secrets, missing_env

MARKS = {PASS: "✓", WARN: "!", FAIL: "✗"}


@dataclass
class CheckLine:
    status: str
    name: str
    detail: str


@dataclass
class CheckReport:
    """Readiness findings advise (exit 0); only a broken suite (raised as SuiteError) exits non-zero."""

    suite: Suite
    dataset: Dataset
    lines: list[CheckLine] = field(default_factory=list)
    hygiene: dict | None = (
        None  # overlap pairs and label counts (harness.check.hygiene), for --json
    )

    def add(self, status: str, name: str, detail: str) -> None:
        self.lines.append(CheckLine(status, name, detail))

    def render(self) -> str:
        out = [f"{self.suite.name}: suite and data are valid ({self.suite.path})"]
        out += [f"  {MARKS[line.status]} {line.name}: {line.detail}" for line in self.lines]
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "suite": self.suite.name,
            "path": str(self.suite.path),
            "valid": True,
            "test_examples": len(self.dataset.test),
            "train_examples": len(self.dataset.train),
            "data_hashes": self.dataset.hashes,
            "checks": [line.__dict__ for line in self.lines],
            "hygiene": self.hygiene,
        }


def check_suite(
    path: str | Path,
    *,
    near_dup_threshold: float | None = None,
    runs_dir: str | Path | None = None,
) -> CheckReport:
    load_plugins()
    suite = validate_suite(load_suite(path))
    # Data before templates: a wrong column name is reported as such, not as a template variable.
    dataset = load_dataset(suite)
    validate_templates(suite)
    retrieval = validate_retrieval(suite, dataset.test)  # corpora readable, retrievers importable
    report = CheckReport(suite, dataset)
    report.add(
        PASS, "variants", ", ".join(f"{v.name} ({v.kind}, {v.model})" for v in suite.variants)
    )
    report.add(PASS, "baseline", suite.baseline)
    if suite.spec.data.train:
        report.add(PASS, "train set", f"{len(dataset.train)} examples")
    if dataset.labels is not None:
        report.add(PASS, "labels", f"{len(dataset.labels)} classes")
    for status, name, detail in retrieval:
        report.add(status, name, detail)
    for v in suite.variants:
        if v.finetune is not None:
            spec = finetune_spec(suite, v)  # the backend's own keys: exit 2 with their line
            source = f"distilled from {spec.teacher}" if spec.teacher else "the train split"
            report.add(
                PASS,
                "training",
                f"{v.name}: `harness finetune` trains {spec.base_model} on {source} ({spec.provider})",
            )
    _add_credentials(report)
    if runs_dir is not None:
        _add_protocol(report, runs_dir)
    _add_readiness(report, near_dup_threshold)
    return report


def _add_protocol(report: CheckReport, runs_dir: str | Path) -> None:
    """The suite against its lineage's registered protocol: an edit `harness run` would flag
    (a dropped test row, a dearer baseline, a new margin) is said before anything is spent."""
    lineage, current, registered = against_registered(report.suite, runs_dir)
    if registered is None:  # the first counted run (or `harness register`) registers it
        gone = missing_registration(runs_dir, lineage)
        if gone:
            report.add(
                WARN,
                "protocol",
                f"amendment to the registered protocol {gone[0]} (registered in run {gone[1]}): "
                f"missing from {protocol_path(runs_dir, lineage)} — the next run registers "
                "afresh and its pass is flagged; restore the file to continue the registered "
                "protocol",
            )
        return
    changes = amendments(registered, current)
    amended = [a for a in changes if a.kind == AMENDMENT]
    if not amended:
        report.add(PASS, "protocol", f"matches the registered protocol {registered.fingerprint()}")
    # Another suite on the same test set registered it (the lineage is the test set's): say which.
    whose = (
        f"the protocol {registered.fingerprint()} registered by suite {registered.suite}"
        if registered.suite != report.suite.name
        else f"the registered protocol {registered.fingerprint()}"
    )
    for a in amended:
        report.add(
            WARN,
            "protocol",
            f"amendment to {whose}: {a.line()} — a "
            'pass under it is flagged until `harness register SUITE.yaml --amend --why "…"` '
            "accepts it",
        )
    for a in changes:
        if a.kind != AMENDMENT:
            report.add(PASS, "protocol", f"stricter than registered: {a.line()}")


def _add_credentials(report: CheckReport) -> None:
    """Literal credentials (redacted wherever harness writes them, but better in the
    environment) and `${env:NAME}` references this environment cannot expand: `run` stops
    on those before any call."""
    suite = report.suite
    for key in literal_secrets(suite.raw):
        report.add(
            WARN,
            "credentials",
            f"{key} is a credential written in the suite (redacted in runs/, MLflow and "
            "messages) — keep it in the environment: `${env:NAME}`",
        )
    for v in suite.variants:
        for name in dict.fromkeys(missing_env([v.params, v.api_base])):
            state = "is empty" if name in os.environ else "is not set"
            report.add(
                WARN,
                "credentials",
                f"{v.name}: ${{env:{name}}} {state} here — `harness run` stops before any call "
                f"until {name} is exported",
            )


def _add_readiness(report: CheckReport, near_dup_threshold: float | None) -> None:
    """Readiness checklist, power analysis and data hygiene (advisory lines; no model calls)."""
    suite, dataset = report.suite, report.dataset
    hygiene = check_hygiene(
        dataset.test,
        dataset.train,
        task=suite.task,
        threshold=DEFAULT_NEAR_DUP_THRESHOLD if near_dup_threshold is None else near_dup_threshold,
    )
    for status, name, detail in [
        *readiness_lines(suite, dataset),
        *power_lines(suite, len(dataset.test)),
        *hygiene.lines(),
    ]:
        report.add(status, name, detail)
    report.hygiene = hygiene.to_dict()
