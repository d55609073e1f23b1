import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy.stats import norm

from harness.check.readiness import power_lines, readiness_lines
from harness.cli import main
from harness.data.dataset import load_dataset
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]

LABELS = ["card_arrival", "pin_blocked", "age_limit"]


def _rows(n, prefix):
    # Distinct texts with no shared words, so hygiene finds no overlap between the splits.
    return [{"text": f"{prefix}{i:04d}{prefix}", "label": LABELS[i % 3]} for i in range(n)]


SUITE = """
name: ready
task: classification
data: {{test: test.jsonl, train: train.jsonl, input: text, target: label}}
labels: from-data
metrics: {metrics}
defaults: {{model: openai/gpt-4o-mini, user: "{{{{ text }}}}"}}
variants:
  - {{name: zero-shot, kind: prompt}}
  - {{name: ft, kind: fine-tuned, model: openai/ft:gpt-4o-mini:acme::x, base_model: openai/gpt-4o-mini}}
baseline: zero-shot
{guard}
"""


def write_suite(tmp_path, n_test=30, n_train=120, *, metrics="[accuracy, macro_f1]", guard=None):
    (tmp_path / "test.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _rows(n_test, "q")) + "\n"
    )
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _rows(n_train, "t")) + "\n"
    )
    if guard is None:
        guard = "guard: {metric: macro_f1, margin: 0.05}"
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(metrics=metrics, guard=guard))
    return path


def test_30_test_120_train_gives_the_expected_warnings(tmp_path):
    path = write_suite(tmp_path)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.output
    # The two-sided 95% interval the guard decides on: z = 1.96 + 0.84.
    mdd = (norm.ppf(0.975) + norm.ppf(0.8)) * 0.5 / math.sqrt(30)
    need = math.ceil(((norm.ppf(0.975) + norm.ppf(0.8)) * 0.5 / 0.05) ** 2)
    assert (mdd, need) == (pytest.approx(0.2557, abs=1e-4), 785)
    expected = [
        "  ✓ metric: accuracy, macro_f1",
        "  ! test set size: 30 examples — below 50; collect 50–100 or more before comparing variants",
        "  ✓ prompt baseline: zero-shot (prompt)",
        "  ✓ hypothesis: macro_f1 superiority, margin 0.05 at 95% confidence (ft)",
        "  ! training data: 120 examples — below 200: few-shot prompting is likely sufficient",
        "  ! iteration budget: none — set `guard.max_iterations` or `guard.budget_usd` so a lineage "
        "that keeps missing is abandoned",
        "  ✓ power: with 30 test examples the guard's 95% interval clears its threshold with 80% "
        f"power when the true Δ is {mdd:.3f} beyond it (assumed sd 0.5 of a paired difference; "
        "the run's figure uses the spread it observes)",
        f"  ! power for margin: margin 0.05 needs ≥ {need} test examples; you have 30 — "
        "add test examples or expect an inconclusive verdict",
        "  ✓ exact duplicates: none between train/few-shot pool and test (identical after normalisation)",
        "  ✓ near duplicates: none between train/few-shot pool and test (char n-gram cosine ≥ 0.9)",
        "  ✓ classes missing from train: none — every test class is in train",
        "  ✓ test label balance: 3 classes, 10–10 examples per class (largest/smallest 1.0; smallest 'age_limit')",
        "  ✓ train label balance: 3 classes, 40–40 examples per class (largest/smallest 1.0; smallest 'age_limit')",
    ]
    lines = result.output.splitlines()
    start = lines.index(expected[0])
    assert lines[start:] == expected
    warned = [
        c["name"]
        for c in json.loads(CliRunner().invoke(main, ["check", str(path), "--json"]).output)[
            "checks"
        ]
        if c["status"] == "warn"
    ]
    assert warned == ["test set size", "training data", "iteration budget", "power for margin"]


@pytest.mark.parametrize("n", [10, 30, 50, 200, 3080])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_power_numbers_match_the_normal_closed_form(tmp_path, n, confidence):
    path = write_suite(
        tmp_path, guard=f"guard: {{metric: macro_f1, margin: 0.05, confidence: {confidence}}}"
    )
    suite = load_suite(path)
    (power, margin) = power_lines(suite, n)
    z = norm.ppf((1 + confidence) / 2) + norm.ppf(0.8)
    mdd = z * 0.5 / math.sqrt(n)
    need = math.ceil((z * 0.5 / 0.05) ** 2)
    assert f"{confidence:.0%} interval" in power[2] and f"true Δ is {mdd:.3f} beyond" in power[2]
    assert margin[2].startswith(f"margin 0.05 needs ≥ {need} test examples; you have {n}")
    assert margin[0] == ("pass" if n >= need else "warn")


def test_a_ready_suite_passes_every_line(tmp_path):
    guard = "guard: {metric: accuracy, margin: 0.05, max_iterations: 3, budget_usd: 500}"
    path = write_suite(tmp_path, n_test=1100, n_train=600, guard=guard)
    suite = load_suite(path)
    dataset = load_dataset(suite)
    lines = readiness_lines(suite, dataset) + power_lines(suite, len(dataset.test))
    assert [s for s, _, _ in lines] == ["pass"] * len(lines)
    by_name = {name: detail for _, name, detail in lines}
    assert by_name["iteration budget"] == "max 3 iterations and $500 budget per lineage"
    assert by_name["training data"] == "600 examples (within 200–2000)"
    assert by_name["power for margin"] == (
        "margin 0.05 needs ≥ 1047 test examples at α/3 per iteration (max_iterations 3); you "
        "have 1100 "
        "(80% power when the true Δ is a margin beyond the threshold)"
    )


def test_holm_and_iterations_read_as_one_level():
    # Holm's α/2 and α/3 per iteration read "at α/2 at α/3" before: one level, α/6, is what is used.
    suite = load_suite(ROOT / "suites" / "quickstart-finetune.yaml")
    lines = {name: detail for _, name, detail in power_lines(suite, 60)}
    assert lines["power for lora vs zero-shot"] == (
        "margin 0.1 needs ≥ 303 test examples at Holm's α/2, split over 3 iterations (α/6 each); "
        "you have 60 — add test examples or expect an inconclusive verdict"
    )
    z = norm.ppf(1 - 0.025 / 6) + norm.ppf(0.8)  # the one-sided level `harness plan` prints
    assert math.ceil((z * 0.5 / 0.1) ** 2) == 303


def test_missing_prerequisites_warn_with_a_fix(tmp_path):
    path = write_suite(tmp_path, n_test=60, metrics="[latency_p95, cost_per_1k]", guard="")
    path.write_text(path.read_text().replace("baseline: zero-shot", "baseline: ft"))
    suite = load_suite(path)
    lines = {name: (s, d) for s, name, d in readiness_lines(suite, load_dataset(suite))}
    assert lines["metric"] == (
        "warn",
        "only operational metrics (latency_p95, cost_per_1k) — declare a quality metric such as accuracy or macro_f1",
    )
    assert lines["test set size"] == (
        "pass",
        "60 examples (≥ 50; 50–100 is the usual minimum, more narrows the CIs)",
    )
    assert lines["prompt baseline"] == (
        "warn",
        "the baseline 'ft' is fine-tuned — make a prompt variant (zero-shot) the `baseline:`",
    )
    assert lines["hypothesis"][0] == "warn"
    assert lines["hypothesis"][1].startswith("no `guard:`")
    assert lines["iteration budget"][0] == "warn"
    assert [name for _, name, _ in power_lines(suite, 60)] == ["power"]
