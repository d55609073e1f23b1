"""A generated corpus of bad inputs across the newer features (guard lists, sequential looks,
value, pricing, `${env:}`, finetune, batch, shards, ledger, bless/compare, CI output paths, YAML
shape, data files): every one exits with its own code (2 for bad input, never 1, the guard's),
prints no traceback, and makes no model call first.

Each case is (suite edit, command): the edit applies to a small valid suite (conftest.write_suite)
pointing at a counting test server, and the command runs in-process through the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_suite
from openai_server import FakeOpenAI

from harness.cli import main

FT = (
    "\n  - name: zero-shot\n  - name: ft\n    kind: fine-tuned\n    base_model: openai/gpt-4o-mini\n"
    "    finetune: {{provider: openai, price_per_1m: 3{extra}}}\n"
)
GUARD = "guard: {{metric: accuracy, margin: 0.05, candidate: few-shot{extra}}}\n"
GUARD_LIST = (
    "guard:\n  - {{metric: accuracy, margin: 0.05, candidate: few-shot{a}}}\n"
    "  - {{metric: accuracy, margin: 0.1, candidate: few-shot{b}}}\n"
)
VALUE = "volume: {{monthly_requests: {volume}}}\nvalue: {{error_cost_usd: {cost}{extra}}}\n"
PRICED = "\n  - name: zero-shot\n    pricing: {{input_per_1m: {i}, output_per_1m: {o}}}\n"
PARAMS = "\n  - name: zero-shot\n    params: {{{params}}}\n"


def _cases() -> dict[str, dict]:
    c: dict[str, dict] = {}

    def add(name, *, extra="", variants=None, args=("run",), raw=None, setup=None, code=2):
        c[name] = dict(extra=extra, variants=variants, args=args, raw=raw, setup=setup, code=code)

    # guard (single) — each bad value checked by run and by check
    for i, bad in enumerate(
        [
            ", margin: -1",
            ", margin: .inf",
            ", margin: .nan",
            ", margin: abc",
            ", confidence: 0.4",
            ", confidence: 1.0",
            ", confidence: .nan",
            ", max_iterations: 0",
            ", max_iterations: 1.5",
            ", budget_usd: -1",
            ", budget_usd: .inf",
            ", budget_usd: 1e308",
            ", max_error_rate: 2",
            ", max_error_rate: -0.1",
            ", correction: bonferroni",
            ", test: two-sided",
            ", applies_to: [nobody]",
            ", baseline: nobody",
            ", unknown_key: 1",
            ", max_iterations: " + "9" * 60,
        ]
    ):
        key = bad.split(":")[0].strip(", ")
        for cmd in ("run", "check"):
            add(f"guard-{i:02d}-{key}-{cmd}", extra=GUARD.format(extra=bad), args=(cmd,))
    for name, text in {
        "guard-metric-unknown": "guard: {metric: f1_macro, margin: 0.1, candidate: few-shot}\n",
        "guard-candidate-unknown": "guard: {metric: accuracy, margin: 0.1, candidate: nobody}\n",
        "guard-is-a-string": "guard: accuracy\n",
        "guard-is-a-number": "guard: 3\n",
        "guard-list-empty": "guard: []\n",
        "guard-list-of-strings": "guard: [accuracy]\n",
        "guard-list-of-lists": "guard: [[1]]\n",
        "guard-list-null-entry": "guard: [null]\n",
        "guard-list-duplicate": GUARD_LIST.format(a="", b="").replace("0.1,", "0.05,"),
        "guard-list-corrections-differ": GUARD_LIST.format(a=", correction: none", b=""),
        "guard-list-sequential-differ": GUARD_LIST.format(a=", sequential: {looks: 2}", b=""),
        "guard-list-bad-second": GUARD_LIST.format(a="", b=", margin: -3"),
        "guard-net-value-without-value": (
            "guard: {metric: net_monthly_value, margin: 1, candidate: few-shot}\n"
        ),
    }.items():
        add(name, extra=text)
        add(name + "-check", extra=text, args=("check",))
    # sequential looks
    for looks in ("1", "0", "21", "-2", "x", ".inf", "2.5", "[]", "null"):
        add(
            f"sequential-looks-{looks}",
            extra=GUARD.format(extra=f", sequential: {{looks: {looks}}}"),
        )
    add("sequential-unknown-key", extra=GUARD.format(extra=", sequential: {looks: 2, alpha: 1}"))
    add("sequential-is-a-list", extra=GUARD.format(extra=", sequential: [2]"))
    # value and volume
    for cost in ("-1", ".inf", ".nan", "1e308", "abc", "[]", "-.inf"):
        add(f"value-error-cost-{cost}", extra=VALUE.format(volume=1000, cost=cost, extra=""))
    for volume in ("0", "-5", ".inf", "1e300", "abc", "null"):
        add(f"value-volume-{volume}", extra=VALUE.format(volume=volume, cost=1, extra=""))
    for name, extra in {
        "value-per-class-negative": ", per_class: {card_arrival: -2}",
        "value-per-class-inf": ", per_class: {card_arrival: .inf}",
        "value-per-class-list": ", per_class: [1, 2]",
        "value-amortise-zero": ", amortise_months: 0",
        "value-amortise-inf": ", amortise_months: .inf",
        "value-unknown-key": ", currency: EUR",
    }.items():
        add(name, extra=VALUE.format(volume=1000, cost=1, extra=extra))
    add("value-is-a-number", extra="volume: {monthly_requests: 10}\nvalue: 3\n")
    # pricing
    for i, o in (
        (".inf", 1),
        ("-1", 1),
        ("1e308", 1),
        ("abc", 1),
        (1, ".nan"),
        (1, "20000"),
        (1, "-.inf"),
    ):
        add(f"pricing-{i}-{o}", variants=PRICED.format(i=i, o=o))
        add(f"pricing-{i}-{o}-check", variants=PRICED.format(i=i, o=o), args=("check",))
    add("pricing-is-a-number", variants="\n  - name: zero-shot\n    pricing: 5\n")
    add(
        "pricing-missing-output",
        variants="\n  - name: zero-shot\n    pricing: {input_per_1m: 1}\n",
    )
    # ${env:} references
    for i, ref in enumerate(
        [
            "${env:}",
            "${env:bad-name}",
            "${env:1ABC}",
            "${env:A B}",
            "${env: KEY}",
            "${env:KEY",
            "Bearer ${env:}",
            "${env:OK_NAME}${env:}",
            "${env:$HOME}",
            "${env:KEY.x}",
        ]
    ):
        add(f"env-ref-{i:02d}-api-key", variants=PARAMS.format(params=f"api_key: '{ref}'"))
        add(
            f"env-ref-{i:02d}-header",
            variants=PARAMS.format(params=f"extra_headers: {{X-Auth: '{ref}'}}"),
            args=("check",),
        )
    add(
        "env-ref-in-api-base",
        variants="\n  - name: zero-shot\n    api_base: 'http://${env:bad-host}/v1'\n",
    )
    add(
        "env-unset",
        variants=PARAMS.format(params="api_key: '${env:HARNESS_CORPUS_UNSET_VAR}'"),
    )
    add("env-empty", variants=PARAMS.format(params="api_key: '${env:HARNESS_CORPUS_EMPTY}'"))
    # finetune blocks (through `harness finetune` and `check`)
    for i, bad in enumerate(
        [
            ", provider: nowhere",
            ", epochs: 0",
            ", epochs: -1",
            ", epochs: x",
            ", validation: 1.5",
            ", validation: -0.1",
            ", price_per_1m: -1",
            ", price_per_1m: .inf",
            ", price_per_1m: 1e308",
            ", suffix: " + "s" * 80,
            ", batch_size: 0",
            ", learning_rate_multiplier: 0",
            ", learning_rate_multiplier: -1",
            ", data: {distill: nobody}",
            ", data: {distill: ft}",
            ", method: dpo",
            ", seed: x",
            ", unknown_option: 1",
        ]
    ):
        key = bad.split(":")[0].strip(", ")
        variants = FT.format(extra=bad).replace("price_per_1m: 3, price_per_1m", "price_per_1m")
        add(f"finetune-{i:02d}-{key}", variants=variants, args=("finetune",))
        add(f"finetune-{i:02d}-{key}-check", variants=variants, args=("check",))
    add(
        "finetune-on-a-prompt-variant",
        variants="\n  - name: zero-shot\n    finetune: {provider: openai, price_per_1m: 1}\n",
        args=("check",),
    )
    add("finetune-no-trainable-variant", args=("finetune",))
    add("finetune-unknown-variant", args=("finetune", "--variant", "nobody"))
    add("finetune-cancel-nothing", variants=FT.format(extra=""), args=("finetune", "--cancel"))
    # batch
    add(
        "batch-provider-without-batch-api",
        variants="\n  - name: zero-shot\n    model: anthropic/claude-3-haiku\n",
        args=("run", "--batch"),
    )
    for poll in ("0", "-1", "x", "nan"):
        add(f"batch-poll-{poll}", args=("run", "--batch", "--batch-poll", poll))
    # shards
    for shard in ("0/2", "3/2", "1/0", "a/b", "1", "-1/2", "1/2/3", "", "2/1", "1/-2", "1.5/2"):
        add(f"shard-{shard or 'empty'}".replace("/", "of"), args=("run", "--shard", shard))
    # CI output paths and other options
    add("pr-comment-is-a-directory", args=("run", "--pr-comment", "."))
    add("junit-is-a-directory", args=("run", "--junit", "."))
    add("pr-comment-under-a-file", args=("run", "--pr-comment", "suite.yaml/x.md"))
    add("junit-under-a-file", args=("run", "--junit", "suite.yaml/x.xml"))
    add("limit-zero", args=("run", "--limit", "0"))
    add("limit-negative", args=("run", "--limit", "-3"))
    add("concurrency-zero", args=("run", "--concurrency", "0"))
    add("resume-without-a-run", args=("run", "--resume"))
    add("resume-unknown-run", args=("run", "--resume", "20990101-000000-0000"))
    add("resume-path-traversal", args=("run", "--resume", "../../etc"))
    add("variant-unknown", args=("run", "--variant", "nobody"))
    # ledger, bless, compare, report, merge
    add("ledger-missing-suite", args=("ledger", "nope.yaml"), raw="skip-suite")
    add("ledger-test-data-missing", args=("ledger",), setup="remove-test")
    add("ledger-test-data-special", args=("ledger",), setup="test-dev-zero")
    add(
        "ledger-exclude-unknown", args=("ledger", "exclude", "nope", "--why", "x"), raw="skip-suite"
    )
    add(
        "ledger-exclude-empty-why",
        args=("ledger", "exclude", "nope", "--why", ""),
        raw="skip-suite",
    )
    add("bless-unknown-run", args=("bless", "runs/test-suite/nope"), raw="skip-suite")
    add("bless-a-file", args=("bless", "suite.yaml"), raw="skip-suite")
    add("compare-unknown-run", args=("compare", "runs/test-suite/nope"), raw="skip-suite")
    add("compare-a-file", args=("compare", "suite.yaml"), raw="skip-suite")
    add("compare-two-missing", args=("compare", "a", "b"), raw="skip-suite")
    add("report-unknown-run", args=("report", "runs/nope"), raw="skip-suite")
    add("report-a-file", args=("report", "suite.yaml"), raw="skip-suite")
    add("merge-nothing", args=("merge",), raw="skip-suite")
    add("merge-missing-dirs", args=("merge", "a", "b"), raw="skip-suite")
    # YAML shape
    add("yaml-deep-lists", raw="name: x\ndescription: " + "[" * 3000 + "]" * 3000 + "\n")
    add("yaml-deep-maps", raw="name: x\nd: " + "{a: " * 200 + "1" + "}" * 200 + "\n")
    add("yaml-huge-int-repeats", variants="\n  - name: zero-shot\n    repeats: " + "9" * 400 + "\n")
    add("yaml-huge-int-timeout", extra="\n", setup="timeout-huge")
    add(
        "yaml-huge-negative-int", variants="\n  - name: zero-shot\n    repeats: -" + "9" * 30 + "\n"
    )
    add("yaml-huge-hex-int", variants="\n  - name: zero-shot\n    repeats: 0x" + "f" * 40 + "\n")
    add("yaml-is-a-list", raw="- a\n- b\n")
    add("yaml-is-a-scalar", raw="just text\n")
    add("yaml-empty", raw="")
    add("yaml-nul-bytes", raw="name: x\x00\ntask: classification\n")
    add("yaml-not-utf8", raw=b"name: \xff\xfe\n")
    add("yaml-tabs", raw="name: x\n\ttask: classification\n")
    add(
        "yaml-alias-bomb",
        raw="a: &a [1,1,1,1,1,1,1,1,1]\n"
        + "".join(
            f"{k}: &{k} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            for p, k in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    )
    add("yaml-suite-is-dev-zero", raw="dev-zero")
    add("yaml-suite-is-a-directory", raw="directory")
    # data files
    add("data-test-is-dev-zero", setup="test-dev-zero")
    add("data-train-is-dev-zero", setup="train-dev-zero")
    add("data-test-is-a-fifo", setup="test-fifo")
    add("data-test-missing", setup="remove-test")
    add("data-test-empty-file", setup="test-empty")
    add("data-test-not-utf8", setup="test-latin1")
    add("data-test-only-header", setup="test-header-only")
    add("data-test-missing-target-column", setup="test-no-target")
    return c


CASES = _cases()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 150


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI('{"intent": "card_arrival"}') as s:
        yield s


def _setup(root: Path, how: str | None) -> None:
    test, train = root / "data" / "test.csv", root / "data" / "train.csv"
    if how == "remove-test":
        test.unlink()
    elif how == "test-dev-zero":
        test.unlink()
        test.symlink_to("/dev/zero")
    elif how == "train-dev-zero":
        train.unlink()
        train.symlink_to("/dev/zero")
    elif how == "test-fifo":
        test.unlink()
        os.mkfifo(test)
    elif how == "test-empty":
        test.write_bytes(b"")
    elif how == "test-latin1":
        test.write_bytes("text,category\ncaf\xe9,card_arrival\n".encode("latin-1"))
    elif how == "test-header-only":
        test.write_text("text,category\n")
    elif how == "test-no-target":
        test.write_text("text,other\nhi,x\n")
    elif how == "timeout-huge":
        suite = root / "suite.yaml"
        suite.write_text(suite.read_text().replace("timeout: 5", "timeout: " + "9" * 400))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_with_its_code_without_a_traceback_or_a_call(
    case, server, tmp_path, monkeypatch
):
    spec = CASES[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-corpus-0123456789")
    monkeypatch.setenv("HARNESS_CORPUS_EMPTY", "")
    monkeypatch.delenv("HARNESS_CORPUS_UNSET_VAR", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    suite = write_suite(
        tmp_path, server.url, n=6, variants=spec["variants"], extra="\n" + spec["extra"]
    )
    raw = spec["raw"]
    if raw == "dev-zero":
        suite.unlink()
        suite.symlink_to("/dev/zero")
    elif raw == "directory":
        suite.unlink()
        suite.mkdir()
    elif isinstance(raw, bytes):
        suite.write_bytes(raw)
    elif raw is not None and raw != "skip-suite":
        suite.write_text(raw)
    _setup(tmp_path, spec["setup"])
    args = list(spec["args"])
    if raw != "skip-suite":
        args.insert(1 if args[0] != "ledger" or len(args) == 1 else 1, "suite.yaml")
    before = server.requests, len(server.fine_tuning.created), len(server.files.uploads)
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert result.exit_code == spec["code"], result.output
    assert (server.requests, len(server.fine_tuning.created), len(server.files.uploads)) == before
    assert result.output.strip(), "a refusal says why"
