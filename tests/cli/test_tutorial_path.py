"""The README's quickstart, then the tutorial, as a reader follows them (issue 32): both suites
ask the same test questions, so the tutorial's suite continues the quickstart's lineage. The
tutorial's own words — the `harness register … --amend --why` line of step 4 — must lead to its
verdict (both hypotheses PASS, exit 0), not to "not counted".

The shipped suites, with the local model swapped for the test server: `lora` answers right,
the prompts answer prose (as SmolLM2 does without a grammar).
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _suites(tmp_path: Path, url: str) -> None:
    (tmp_path / "suites").mkdir()
    for name in ("quickstart", "quickstart-finetune"):
        spec = yaml.safe_load((ROOT / "suites" / f"{name}.yaml").read_text(encoding="utf-8"))
        for key in ("test", "train"):
            spec["data"][key] = str(ROOT / "suites" / spec["data"][key])
        spec["output_schema"] = str(ROOT / "suites" / spec["output_schema"])
        spec["defaults"].update(model="openai/fake-model", api_base=url)
        for v in spec["variants"]:
            if v["name"] == "lora":  # a trained model, named by its id
                del v["finetune"]
                v.update(model="openai/ft-model", base_model="openai/fake-model")
        (tmp_path / "suites" / f"{name}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")


def _tutorial_amend_command() -> list[str]:
    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    line = re.search(r"^harness register suites/quickstart-finetune\.yaml --amend .*$", text, re.M)
    assert line, "tutorial step 4 lost its `harness register … --amend --why` line"
    return shlex.split(line.group(0))[1:]


def test_the_tutorial_after_the_quickstart_reaches_its_verdict(
    tmp_path, isolated_cwd, openai_server, fake_key
):
    gold = {
        r["text"]: r["category"]
        for r in csv.DictReader((ROOT / "data/banking77-mini/test.csv").open(encoding="utf-8"))
    }

    def answer(messages, body):
        asked = messages[-1]["content"].rsplit("Question:", 1)[-1].removesuffix("Answer:").strip()
        if body.get("model") == "ft-model":
            return json.dumps({"intent": gold[asked]})
        return "To locate your card, you can use the following steps"

    _suites(tmp_path, openai_server(answer).url)
    runner = CliRunner()

    def harness(*args: str):
        return runner.invoke(main, list(args))

    assert harness("run", "suites/quickstart.yaml").exit_code == 1  # the README's FAIL
    tutorial = "suites/quickstart-finetune.yaml"
    checked = harness("check", tutorial)
    assert checked.exit_code == 0, checked.output
    assert [ln for ln in checked.output.splitlines() if ln.startswith("  ! protocol:")] == [
        ln
        for ln in checked.output.splitlines()
        if ln.startswith("  ! protocol: amendment to the protocol ")
        and " registered by suite quickstart: " in ln
    ]
    assert len([ln for ln in checked.output.splitlines() if "! protocol:" in ln]) == 2
    assert harness("register", tutorial).exit_code == 1  # step 4: the amendments, listed
    amended = harness(*_tutorial_amend_command())
    assert amended.exit_code == 0, amended.output
    assert "✓ protocol: matches the registered protocol " in harness("check", tutorial).output
    baselines = harness("run", tutorial, "--variant", "zero-shot", "--variant", "few-shot")
    assert baselines.exit_code == 0, baselines.output
    final = harness("run", tutorial)
    assert final.exit_code == 0, final.output
    verdicts = [ln for ln in final.output.splitlines() if ln.startswith(("PASS", "decision:"))]
    assert [v.split(":")[0] for v in verdicts] == ["PASS (accuracy)"] * 2 + ["decision"] * 2
    assert all("Holm across 2 hypotheses" in v for v in verdicts[:2])
    assert "not counted" not in final.output
