"""The parent row of a run in MLflow. Its readable spent / would-cost beside its children's: a
run none of whose variants has a cost figure (every call failed, or no call priced) reads "–"
there, as each child does, never "$0" (the cheapest run there is). Its description within
MLflow's length limit."""

from __future__ import annotations

import json

from rundir_fixture import make_run_dir

from harness.rundir.reader import load_run
from harness.track.fields import parent_fields, variant_fields


def _without_cost(run_dir, names):
    path = run_dir / "summary.json"
    s = json.loads(path.read_text())
    for name in names:
        v = s["variants"][name]
        v.update(cost_usd=None, spent_usd=None, cost_per_request=None)
    path.write_text(json.dumps(s))


def test_no_variant_with_a_cost_reads_a_dash_on_the_parent_as_on_each_child(tmp_path):
    d = make_run_dir(tmp_path)
    _without_cost(d, ["zero-shot", "few-shot", "ft-mini"])
    run = load_run(d)
    tags = parent_fields(run)[2]
    assert (tags["spent"], tags["would cost"]) == ("–", "–")
    for name in run.variants:
        child = variant_fields(run, name)[2]
        assert (child["spent"], child["would cost"]) == ("–", "–")


def test_the_priced_variants_sum_on_the_parent(tmp_path):
    d = make_run_dir(tmp_path)
    _without_cost(d, ["ft-mini"])
    s = json.loads((d / "summary.json").read_text())
    _, metrics, tags = parent_fields(load_run(d))
    total = sum(s["variants"][n]["cost_usd"] for n in ("zero-shot", "few-shot"))
    assert metrics["cost_usd"] == total
    assert tags["would cost"] == f"${total:.4f}".rstrip("0")


def test_a_description_longer_than_mlflow_keeps_is_cut_by_harness_not_refused(
    tmp_path, monkeypatch
):
    """MLflow keeps 8,000 characters of a tag; past that it cuts with a warning that quotes the
    text, or refuses the whole batch (MLFLOW_TRUNCATE_LONG_VALUES=false, a server configured
    so). A long guard list's description is cut by harness, saying where the rest is."""
    from mlflow import MlflowClient

    from harness.track.log import log_run

    d = make_run_dir(tmp_path)
    path = d / "summary.json"
    s = json.loads(path.read_text())
    s["guard"]["verdicts"]["ft-mini"]["sentence"] = "ft-mini: " + "long reason " * 800
    path.write_text(json.dumps(s))
    monkeypatch.setenv("MLFLOW_TRUNCATE_LONG_VALUES", "false")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = log_run(d, uri)
    note = MlflowClient(uri).get_run(parent_id).data.tags["mlflow.note.content"]
    assert len(note) <= 8000
    assert note.endswith("… (cut at MLflow's 8,000 characters: the whole text is in report.md)")
    assert note.startswith("- **undecided** on `ft-mini` vs `zero-shot` (inconclusive)")
