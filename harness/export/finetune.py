"""Fine-tuning data export: OpenAI chat JSONL from the train split or from a teacher's outputs.

Each line is {"messages": [system?, user, assistant]}: system and user are rendered from the
target variant's templates (what the fine-tuned model will see when evaluated), the assistant
message is the answer it should learn. From the train split that answer is the target, written
as the `output_schema` answer JSON when the suite has one (e.g. {"intent": "card_arrival"}); from
a teacher run (`from_variant`) it is the teacher's own output, kept only when it was scored
correct and format-compliant. Examples whose text is also in the test set are dropped (training
on them would make the evaluation measure memory).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness._util.jsonl import read_lines
from harness._util.text import fold, inputs_text
from harness.calls._litellm import count_tokens
from harness.data.dataset import Dataset, Example, load_dataset, read_table, to_examples
from harness.errors import SuiteError
from harness.prompt.templates import render_messages
from harness.rundir.paths import results_path, suite_runs_dir
from harness.rundir.reader import load_run, resolved_suite
from harness.score.scorer import answer_field as schema_answer_field
from harness.suite import Suite, Variant
from harness.suite.kinds import KINDS

ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id"}
# OpenAI's per-example limit for current chat fine-tuning models (gpt-4o-mini, gpt-4.1*); older
# models accept less — pass max_tokens_per_example for them.
DEFAULT_MAX_TOKENS_PER_EXAMPLE = 65_536
MIN_EXAMPLES = 10  # OpenAI rejects files with fewer


@dataclass
class ExportResult:
    path: str
    variant: str
    source: str  # "train" or "teacher:<variant>"
    token_model: str
    n_examples: int
    n_tokens: int
    epochs: int
    price_per_1m: float | None
    cost_usd: float | None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"wrote {self.n_examples} examples to {self.path} ({self.source}, templates of {self.variant})",
            f"  tokens: {self.n_tokens} ({self.token_model} tokenizer)",
        ]
        if self.cost_usd is None:
            lines.append(
                "  training cost: unknown — set `training.price_per_1m` on the variant or pass --price-per-1m"
            )
        else:
            lines.append(
                f"  training cost: ${self.cost_usd:.2f} (${self.price_per_1m:g} per 1M tokens × "
                f"{self.n_tokens} tokens × {self.epochs} epoch(s))"
            )
        for reason, n in self.skipped.items():
            lines.append(f"  skipped {n}: {reason}")
        if self.problems:
            lines.append(f"  format problems ({len(self.problems)}):")
            lines += [f"    {p}" for p in self.problems[:20]]
        else:
            lines.append("  format: valid OpenAI chat fine-tuning JSONL")
        return "\n".join(lines)


def export_finetune(
    suite: Suite,
    out: str | Path,
    *,
    variant: str | None = None,
    from_variant: str | None = None,
    run_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
    include_incorrect: bool = False,
    epochs: int | None = None,
    price_per_1m: float | None = None,
    max_tokens_per_example: int = DEFAULT_MAX_TOKENS_PER_EXAMPLE,
    dataset: Dataset | None = None,
) -> ExportResult:
    """Write the JSONL, count tokens, estimate training cost and validate the file."""
    target = _target_variant(suite, variant)
    dataset = dataset or load_dataset(suite)
    skipped: dict[str, int] = {}
    if from_variant is None:
        source, pairs = "train", _train_pairs(suite, dataset, skipped)
    else:
        if run_dir is None:
            run_dir = latest_run_with(suite, from_variant, runs_dir)
        source = f"teacher:{from_variant} ({run_dir})"
        pairs = _teacher_pairs(suite, dataset, from_variant, run_dir, include_incorrect, skipped)

    pairs = _drop_test_overlap(pairs, _full_test(suite, dataset), skipped)
    token_model = target.base_model or target.model
    rows = []
    for example, answer in pairs:
        messages = render_messages(target, example)
        messages.append({"role": "assistant", "content": answer})
        rows.append({"messages": messages})

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    counts = [count_tokens(token_model, row["messages"]) for row in rows]
    training = target.training
    epochs = epochs or (training.epochs if training else 1)
    price = (
        price_per_1m if price_per_1m is not None else (training.price_per_1m if training else None)
    )
    n_tokens = sum(counts)
    cost = None if price is None else price * n_tokens / 1e6 * epochs
    # Structure is checked on the written file; the token limit on the counts already made.
    problems = validate_chat_jsonl(out)
    problems += token_problems(dict(enumerate(counts, start=1)), max_tokens_per_example)
    result = ExportResult(
        path=str(out),
        variant=target.name,
        source=source,
        token_model=token_model,
        n_examples=len(rows),
        n_tokens=n_tokens,
        epochs=epochs,
        price_per_1m=price,
        cost_usd=cost,
        skipped=skipped,
        problems=problems,
    )
    # Recorded next to the file, so the numbers travel with the data to the fine-tuning job.
    Path(str(out) + ".meta.json").write_text(
        json.dumps(result.to_dict(), indent=2), encoding="utf-8"
    )
    return result


# ---------------------------------------------------------------- sources


def _target_variant(suite: Suite, name: str | None) -> Variant:
    """The variant whose templates the fine-tuned model sees: given, else the first fine-tuned."""
    if name is not None:
        return suite.variant(name)
    tuned = [v for v in suite.variants if KINDS[v.kind].trained]
    return tuned[0] if tuned else suite.variant(suite.baseline)


def answer_field(suite: Suite) -> str | None:
    """The one field of the output_schema answer object, as scoring reads it."""
    return schema_answer_field(suite.output_schema)


def _answer(suite: Suite, target: Any) -> str | None:
    """The assistant message that teaches `target` in the format the evaluation expects."""
    if target is None or (isinstance(target, str) and not target.strip()):
        return None
    if isinstance(target, (dict, list)):
        return json.dumps(target, ensure_ascii=False)
    key = answer_field(suite) if suite.task == "classification" else None
    if key is not None:
        return json.dumps({key: target}, ensure_ascii=False)
    return str(target)


def _answer_validator(suite: Suite):
    """answer text -> bool: parses as JSON valid against output_schema (always True without one)."""
    if suite.output_schema is None:
        return lambda answer: True
    import jsonschema

    validator = jsonschema.validators.validator_for(suite.output_schema)(suite.output_schema)

    def valid(answer: str) -> bool:
        try:
            return validator.is_valid(json.loads(answer))
        except json.JSONDecodeError:
            return False

    return valid


def _train_pairs(suite: Suite, dataset: Dataset, skipped: dict[str, int]) -> list[tuple]:
    """(example, answer) from the train split: targets that exist and validate."""
    if not suite.spec.data.train:
        raise suite.fail(
            "export needs `data.train` (or --from-variant with a run) — add the train split",
            ("data",),
        )
    pairs = [(e, _answer(suite, e.target)) for e in dataset.train]
    _count(skipped, "empty target", sum(1 for _, a in pairs if a is None))
    pairs = [(e, a) for e, a in pairs if a is not None]
    valid = _answer_validator(suite)
    kept = [(e, a) for e, a in pairs if valid(a)]
    _count(skipped, "target does not validate against output_schema", len(pairs) - len(kept))
    return kept


def _teacher_pairs(suite, dataset, teacher, run_dir, include_incorrect, skipped):
    run_dir = Path(run_dir)
    path = results_path(run_dir, teacher)
    if not path.exists():
        have = sorted(p.stem for p in path.parent.glob("*.jsonl") if "." not in p.stem)
        raise SuiteError(f"{path} not found — variants with results in this run: {have or 'none'}")
    examples = _examples_by_id(suite, dataset, run_dir)
    pairs, seen = [], set()
    for rec in read_lines(path, on_torn="skip"):
        ex_id = rec.get("id")
        output = rec.get("output")
        if ex_id in seen:
            _count(skipped, "repeat of an exported example", 1)
            continue
        if rec.get("error") or not isinstance(output, str) or not output.strip():
            _count(skipped, "teacher error or empty output", 1)
            continue
        scores = rec.get("scores") or {}
        if not include_incorrect and not (
            scores.get("correct") == 1 and scores.get("format_ok", 1) == 1
        ):
            _count(skipped, "teacher output not correct and format-compliant", 1)
            continue
        example = examples.get(ex_id)
        if example is None:
            _count(skipped, "id not found in the suite's data", 1)
            continue
        seen.add(ex_id)
        pairs.append((example, output.strip()))
    return pairs


def latest_run_with(suite: Suite, variant: str, runs_dir: str | Path = "runs") -> Path:
    """The newest run of the suite (run ids sort by start time) holding results of `variant`."""
    base = suite_runs_dir(runs_dir, suite.name)
    runs = sorted(p for p in base.glob("*") if results_path(p, variant).exists())
    if not runs:
        raise SuiteError(
            f"no run of suite {suite.name!r} under {base} has results for {variant!r} — "
            f"run it first (harness run SUITE.yaml --variant {variant}) or pass --run RUN_DIR"
        )
    return runs[-1]


def _examples_by_id(suite: Suite, dataset: Dataset, run_dir: Path) -> dict[str, Example]:
    """Examples the teacher answered: the run's own data when it reloads, plus this suite's splits.

    Ids are hashes of the input and target fields (or `data.id`), so a teacher run whose test
    split is this suite's train file yields the same ids as this suite's train examples.
    """
    out = {e.id: e for e in [*dataset.test, *dataset.train]}
    try:
        run_suite = resolved_suite(load_run(run_dir))
        for e in load_dataset(run_suite, hash_files=False).test:
            out.setdefault(e.id, e)
    except (SuiteError, OSError):  # the run's data moved or its suite no longer loads
        pass  # ids from this suite only
    return out


def _full_test(suite: Suite, dataset: Dataset) -> list[Example]:
    """The whole test file, not just `data.sample`: a later run may draw other examples."""
    if suite.spec.data.sample is None:
        return dataset.test
    return to_examples(read_table(suite.resolve_path(suite.spec.data.test)), suite, "test")


def _drop_test_overlap(pairs, test: list[Example], skipped):
    test_ids = {e.id for e in test}
    test_texts = {fold(inputs_text(e.inputs)) for e in test}
    kept = [
        (e, a)
        for e, a in pairs
        if e.id not in test_ids and fold(inputs_text(e.inputs)) not in test_texts
    ]
    _count(skipped, "in the test set (same id or same normalised text)", len(pairs) - len(kept))
    return kept


def _count(skipped: dict[str, int], reason: str, n: int) -> None:
    if n:
        skipped[reason] = skipped.get(reason, 0) + n


# ---------------------------------------------------------------- validation


def token_problems(tokens_by_line: dict[int, int], limit: int) -> list[str]:
    """The fine-tuning API's per-example token limit, one problem per line over it."""
    return [
        f"line {i}: {n} tokens — over the {limit}-token limit per example"
        for i, n in tokens_by_line.items()
        if n > limit
    ]


def validate_chat_jsonl(
    path: str | Path, *, model: str | None = None, max_tokens: int | None = None
) -> list[str]:
    """Problems with a chat fine-tuning file, one per line ("line 3: ..."); [] when valid.

    The rules of OpenAI's chat fine-tuning format: each line a JSON object with a `messages`
    list; known roles and keys; non-empty string content; at least one assistant message, and
    the last message is the assistant's; at least 10 examples; and, when `max_tokens` is given,
    each example within that many tokens (counted with litellm for `model`).
    """
    problems: list[str] = []
    n = 0
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            problems.append(f"line {i}: empty line")
            continue
        n += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {i}: invalid JSON ({e.msg} at column {e.colno})")
            continue
        problems += [f"line {i}: {p}" for p in _row_problems(row)]
        if max_tokens is not None and not any(p.startswith(f"line {i}:") for p in problems):
            tokens = count_tokens(model or "gpt-4o-mini", row["messages"])
            problems += token_problems({i: tokens}, max_tokens)
    if n < MIN_EXAMPLES:
        problems.append(f"{n} example(s) — fine-tuning needs at least {MIN_EXAMPLES}")
    return problems


def _row_problems(row: Any) -> list[str]:
    if not isinstance(row, dict):
        return [f"expected a JSON object, got {type(row).__name__}"]
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["missing or empty `messages` list"]
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            out.append(f"messages[{j}]: expected an object")
            continue
        extra = sorted(set(m) - MESSAGE_KEYS)
        if extra:
            out.append(f"messages[{j}]: unknown key(s) {extra}")
        role = m.get("role")
        if role not in ROLES:
            out.append(f"messages[{j}]: role {role!r} — use one of {sorted(ROLES)}")
        content = m.get("content")
        if (
            not (isinstance(content, str) and content.strip())
            and not m.get("tool_calls")
            and not m.get("function_call")
        ):
            out.append(f"messages[{j}]: empty or non-text content")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        out.append("no assistant message")
    elif roles[-1] != "assistant":
        out.append(f"last message is {roles[-1]!r} — it must be the assistant's")
    return out
