"""`harness init DATA`: a starting suite for a data file — the evaluation-first workflow.

The suite it writes measures before anything is trained: a zero-shot baseline, a few-shot
variant (when a train split sits beside the data), a RAG variant (when a corpus is given), a
fine-tuned variant left commented for the user to fill in, and a pre-registered hypothesis with
the article's defaults (a 5-point margin at 95% confidence, at most 3 iterations). The task is
read from the targets: JSON objects are extraction, a small set of repeated values is
classification, anything else generation.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.dataset import read_table
from harness.errors import SuiteError
from harness.suite.secrets import ENV_REF, redact_text, url_secrets, url_userinfo

# Column names that usually hold the expected answer / a record id, in order of preference.
TARGET_NAMES = (
    "target",
    "label",
    "category",
    "intent",
    "answer",
    "reference",
    "expected",
    "output",
)
ID_NAMES = ("id", "uid", "pmid", "example_id")
UNNAMED = re.compile(r"Unnamed: \d+")
MAX_CLASSES = 100
MARGIN = 0.05  # the article's example hypothesis: "format consistency from 85% to 95%" is +10;
# 5 points is the usual smallest difference worth a fine-tune's weeks
CONFIDENCE = 0.95
MAX_ITERATIONS = 3  # "budget for 2-3 iterations of fine-tuning"
DEFAULT_MODEL = "openai/gpt-4o-mini"

METRICS = {
    "classification": ["accuracy", "macro_f1", "latency_p95", "cost_per_1k"],
    "extraction": ["field_f1", "exact_record", "latency_p95", "cost_per_1k"],
    "generation": ["chrf", "exact_match", "latency_p95", "cost_per_1k"],
}
GUARD_METRIC = {"classification": "accuracy", "extraction": "field_f1", "generation": "chrf"}


@dataclass
class Detected:
    task: str
    inputs: list[str]
    target: str
    id: str | None
    labels: list[str] | None
    train: Path | None


def detect(path: Path) -> Detected:
    rows = read_table(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    target = next((c for c in TARGET_NAMES if c in columns), columns[-1])
    ids = [c for c in columns if c.lower() in ID_NAMES and c != target]
    id_col = ids[0] if ids and len({str(r.get(ids[0])) for r in rows}) == len(rows) else None
    # pandas' to_csv() index: an empty header, which read_table names like pandas does.
    inputs = [c for c in columns if c not in (target, id_col) and not UNNAMED.fullmatch(c)]
    odd = next((c for c in inputs if not _template_name(c)), None)
    if odd is not None:
        fix = re.sub(r"\W+", "_", odd).strip("_") or "text"
        raise SuiteError(
            f"{path}: column {odd!r} cannot be a template variable (a template reads "
            f"{{{{ name }}}}) — rename it to letters, digits and _ (e.g. {fix})"
        )
    if not inputs:
        raise SuiteError(
            f"{path}: only the column {target!r} — the data needs an input column and a target"
        )
    values = [r.get(target) for r in rows]
    if all(isinstance(v, dict) or _json_object(v) for v in values):
        task, labels = "extraction", None
    else:
        distinct = sorted({str(v) for v in values})
        # Each class seen about three times or more: a label set, not free text.
        if len(distinct) <= MAX_CLASSES and len(distinct) * 3 <= len(rows):
            task, labels = "classification", distinct
        else:
            task, labels = "generation", None
    train = next(
        (p for p in sorted(path.parent.glob("train.*")) if p != path and p.suffix == path.suffix),
        None,
    )
    return Detected(task, inputs, target, id_col, labels, train)


def _template_name(column: str) -> bool:
    """Whether `{{ column }}` reads the field (not a syntax error, a keyword or a constant)."""
    from jinja2 import Environment, TemplateSyntaxError, meta

    try:
        parsed = Environment().parse(f"{{{{ {column} }}}}")
    except TemplateSyntaxError:
        return False
    return meta.find_undeclared_variables(parsed) == {column}


def _json_object(v: Any) -> bool:
    if not isinstance(v, str) or not v.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(v), dict)
    except json.JSONDecodeError:
        return False


def suite_name(path: Path) -> str:
    stem = path.stem if path.stem not in ("test", "train", "data") else path.parent.name
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-.") or "suite"


def starter_suite(
    data: str | Path,
    out: str | Path,
    *,
    corpus: str | None = None,
    model: str = DEFAULT_MODEL,
    api_base: str | None = None,
) -> Path:
    """Write the starting suite for `data` to `out` (relative paths start at `out`'s folder)."""
    if api_base and url_userinfo(api_base):
        # Even as `${env:…}`: the OpenAI client sends no user:password from a URL, and the
        # suite loader refuses one (harness.suite.variants).
        raise SuiteError(
            f"--api-base {redact_text(api_base)}: a user:password@ in the URL is not sent by the "
            "OpenAI client (the suite would not load) — pass the URL without it, and the key in "
            "the written suite as `defaults.params.api_key: ${env:NAME}`"
        )
    literal = ENV_REF.sub("", api_base or "")  # references are fine
    if api_base and url_secrets(literal):
        # A suite is a file people commit: a key in the URL would be kept in git for good.
        raise SuiteError(
            f"--api-base {redact_text(api_base)} carries a credential, which the suite file "
            "would keep — put it in the environment and write ${env:MY_KEY} in its place in the "
            "URL (in single quotes, so the shell leaves it alone)"
        )
    data_path = Path(data).resolve()
    out_path = Path(out)
    if out_path.resolve() == data_path:  # --force overwrites a suite, never the data
        raise SuiteError(f"--out {out} is the data file — pass --out NEW.yaml for the suite")
    d = detect(data_path)
    here = out_path.resolve().parent
    rel = _relative(data_path, here)
    name = suite_name(data_path)
    fields = d.inputs
    user = (
        f"{{{{ {fields[0]} }}}}"
        if len(fields) == 1
        else "\n".join(f"{f}: {{{{ {f} }}}}" for f in fields)
    )
    task_words = {
        "classification": "Answer with exactly one of the labels: " + ", ".join(d.labels or []),
        "extraction": "Answer with a JSON object of the fields you find.",
        "generation": "Write the answer.",
    }
    suite: dict[str, Any] = {
        "name": name,
        "description": f"Starting suite written by `harness init` for {rel}.",
        "task": d.task,
        "data": {"test": rel, **({"train": _relative(d.train, here)} if d.train else {})},
    }
    suite["data"]["input"] = fields[0] if len(fields) == 1 else fields
    suite["data"]["target"] = d.target
    if d.id:
        suite["data"]["id"] = d.id
    if d.task == "classification":
        suite["labels"] = "from-data"
    suite["metrics"] = METRICS[d.task]
    defaults: dict[str, Any] = {"model": model}
    if api_base:
        defaults["api_base"] = api_base
    defaults["params"] = {"temperature": 0, "max_tokens": 256 if d.task == "generation" else 64}
    defaults["system"] = task_words[d.task]
    defaults["user"] = user
    suite["defaults"] = defaults
    variants: list[dict[str, Any]] = [{"name": "zero-shot", "kind": "prompt"}]
    if d.train:
        shots = "\n".join(f"{f}: {{{{ ex.{f} }}}}" for f in fields)
        variants.append(
            {
                "name": "few-shot",
                "kind": "prompt",
                "few_shot": {
                    "k": 4,
                    "select": "similar" if d.task != "classification" else "stratified",
                },
                "user": "{% for ex in examples %}"
                + shots
                + (
                    "\nAnswer: {{ ex.target | tojson }}"
                    if d.task == "extraction"
                    else "\nAnswer: {{ ex.target }}"
                )
                + "\n\n{% endfor %}"
                + user
                + "\nAnswer:",
            }
        )
    if corpus:
        variants.append(
            {
                "name": "rag",
                "kind": "rag",
                "retrieval": {"corpus": _corpus(corpus, here), "method": "bm25", "k": 4},
                "user": "Context:\n{{ context }}\n\n" + user,
            }
        )
    suite["variants"] = variants
    suite["baseline"] = "zero-shot"
    candidates = [v["name"] for v in variants[1:]]
    guard: dict[str, Any] = {
        "metric": GUARD_METRIC[d.task],
        "test": "superiority",
        "margin": MARGIN,
        "confidence": CONFIDENCE,
        "max_iterations": MAX_ITERATIONS,
    }
    if candidates:
        guard["applies_to"] = candidates
    suite["guard"] = guard
    text = _dump(suite, model, bool(d.train))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return out_path


def _relative(path: Path | None, start: Path) -> str:
    assert path is not None
    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_posix()


def _corpus(pattern: str, here: Path) -> Any:
    """md/txt files as a glob; a data file (jsonl, csv, ...) as its text column."""
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise SuiteError(f"--corpus {pattern!r} matches no file — pass a glob such as docs/**/*.md")
    first = Path(matches[0]).resolve()
    if len(matches) == 1 and first.suffix.lower() in (".jsonl", ".csv", ".json", ".parquet"):
        rows = read_table(first)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        text = max(columns, key=lambda c: sum(len(str(r.get(c) or "")) for r in rows))
        spec: dict[str, Any] = {"path": _relative(first, here), "text": text}
        ids = [c for c in columns if c.lower() in ID_NAMES]
        if ids:
            spec["id"] = ids[0]
        return spec
    # A glob stays a glob, relative to the suite's folder like every path in it.
    return Path(os.path.relpath(os.path.abspath(pattern), here)).as_posix()


def _dump(suite: dict[str, Any], model: str, has_train: bool) -> str:
    import yaml

    header = (
        "# Written by `harness init`. Measure before you train: run it, then `harness diagnose`.\n"
    )

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # Templates read as written: a multi-line string as a literal block.
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    body = yaml.dump(suite, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
    tuned = (
        "  # A fine-tuned variant to fill in once prompting and RAG are exhausted (needs 200-2000\n"
        "  # training examples; `harness finetune` trains it), then add it to guard.applies_to:\n"
        "  # - name: fine-tuned\n"
        "  #   kind: fine-tuned\n"
        f"  #   base_model: {model}\n"
        f"  #   finetune: {{base_model: {model}}}\n"
    )
    if not has_train:
        tuned = (
            "  # (no train split found beside the data: add `data.train` for few-shot and\n  # fine-tuning)\n"
            + tuned
        )
    return header + body.replace("\nbaseline:", "\n" + tuned + "baseline:", 1)
