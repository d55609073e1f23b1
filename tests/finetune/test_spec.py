"""The `finetune:` block: what the suite accepts, and each backend's own keys."""

from __future__ import annotations

import pytest

from harness.errors import SuiteError
from harness.finetune.backends import finetune_spec
from harness.suite import load_suite

HEAD = """name: s
task: classification
data: {test: test.csv, train: train.csv, input: text, target: label}
labels: from-data
metrics: [accuracy]
defaults: {model: openai/gpt-4o-mini, user: "{{ text }}"}
variants:
  - name: zero-shot
"""


def _load(tmp_path, variant: str):
    (tmp_path / "test.csv").write_text("text,label\na,x\n")
    (tmp_path / "train.csv").write_text("text,label\nb,x\n")
    path = tmp_path / "suite.yaml"
    path.write_text(HEAD + variant)
    return load_suite(path)


FT = "{base_model: openai/gpt-4o-mini-2024-07-18, price_per_1m: 3}"


def test_a_finetune_variant_needs_no_model_and_names_its_training(tmp_path):
    suite = _load(tmp_path, f"  - {{name: ft, kind: fine-tuned, finetune: {FT}}}\n")
    v = suite.variant("ft")
    assert v.model == "finetune:ft"  # never the defaults' model
    assert v.base_model == "openai/gpt-4o-mini-2024-07-18"
    spec = finetune_spec(suite, v)
    assert (spec.provider, spec.options.price_per_1m, spec.teacher) == ("openai", 3.0, None)


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            f"  - {{name: ft, kind: fine-tuned, model: openai/x, finetune: {FT}}}\n",
            "variants[1].model: the model id of a `finetune:` variant comes from "
            "its latest succeeded job — remove `model` (or remove `finetune` to evaluate a model "
            "trained elsewhere)",
        ),
        (
            f"  - {{name: ft, kind: fine-tuned, training: {{cost_usd: 3}}, finetune: {FT}}}\n",
            "variants[1].training: `training` is the cost of a model trained "
            "elsewhere — with `finetune:` the cost comes from the job; remove `training`",
        ),
        (
            f"  - {{name: ft, finetune: {FT}}}\n",
            "variants[1].finetune: `finetune` trains a model — it belongs to "
            "`kind: fine-tuned` variants",
        ),
        (
            "  - {name: ft, kind: fine-tuned, finetune: {price_per_1m: 3}}\n",
            "variants[1].finetune.base_model: required — the model to tune, e.g. "
            "base_model: openai/gpt-4o-mini-2024-07-18",
        ),
    ],
)
def test_suite_errors(tmp_path, variant, message):
    with pytest.raises(SuiteError) as e:
        _load(tmp_path, variant)
    text = str(e.value)
    assert text.endswith(message)
    assert "suite.yaml:9:" in text  # the line of the variant


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "{base_model: openai/m, provider: acme}",
            "finetune.provider: unknown provider 'acme' — choose one of ['local', 'openai']",
        ),
        ("{base_model: openai/m}", "finetune.price_per_1m: Field required (provider openai)"),
        (
            "{base_model: openai/m, price_per_1m: 3, lr: 2}",
            "finetune.lr: Extra inputs are not permitted (provider openai)",
        ),
        (
            "{base_model: openai/m, price_per_1m: 3, data: {distill: ft}}",
            "finetune.data.distill: unknown teacher 'ft' — choose another variant of ['zero-shot', 'ft']",
        ),
    ],
)
def test_backend_keys_are_checked_with_their_place(tmp_path, block, message):
    suite = _load(tmp_path, f"  - {{name: ft, kind: fine-tuned, finetune: {block}}}\n")
    with pytest.raises(SuiteError) as e:
        finetune_spec(suite, suite.variant("ft"))
    assert str(e.value).endswith("variants[1]." + message)


def test_check_names_the_training_and_stops_on_a_wrong_backend_key(tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    suite = _load(tmp_path, f"  - {{name: ft, kind: fine-tuned, finetune: {FT}}}\n")
    ok = CliRunner().invoke(main, ["check", str(suite.path)])
    assert (
        "  ✓ training: ft: `harness finetune` trains openai/gpt-4o-mini-2024-07-18 on the train "
        "split (openai)\n" in ok.output
    )
    suite.path.write_text(suite.path.read_text().replace("price_per_1m: 3", "price: 3"))
    bad = CliRunner().invoke(main, ["check", str(suite.path)])
    assert bad.exit_code == 2
    assert bad.output.endswith(
        "variants[1].finetune.price_per_1m: Field required (provider openai)\n"
    )
