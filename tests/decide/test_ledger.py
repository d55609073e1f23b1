"""The sunk-cost ledger: iterations are distinct model ids, training counted once, eval every run."""

from __future__ import annotations

import pytest
from guard_fixtures import decided, make_suite, make_summary, past_run

from harness.decide.ledger import ledger_entry, limit_reached, lineage, usd


def test_ledger_entry_holds_model_costs_and_delta(tmp_path):
    suite = make_suite(tmp_path)
    summary = make_summary((0.031, -0.008, 0.07), ft_cost=1.25)
    before = ledger_entry(suite, summary)
    assert [e["verdict"] for e in before["variants"].values()] == [None, None]
    # The guard fills in each guarded variant's verdict once it is decided.
    entry = decided(suite, summary, [])["ledger_entry"]
    assert entry == {
        "metric": "macro_f1",
        "limit": None,
        "variants": {
            "base": {
                "model": "openai/gpt-4o",
                "metric": "macro_f1",
                "training_usd": 0.0,
                "eval_cost_usd": 2.0,
                "delta": None,
                "delta_ci": None,
                "verdict": None,
                "honest_pass": None,
                "judged": True,
                "hypotheses": {},
            },
            "ft": {
                "model": "openai/ft:gpt-4o-mini:acme::v1",
                "metric": "macro_f1",
                "training_usd": 40.0,
                "eval_cost_usd": 1.25,
                "delta": 0.031,
                "delta_ci": [-0.008, 0.07],  # the interval, for the report's iteration history
                "verdict": "inconclusive",
                "honest_pass": False,
                "judged": True,
                # Each hypothesis on the lineage with its own Δ and verdict.
                "hypotheses": {
                    "ft": {
                        "metric": "macro_f1",
                        "baseline": "base",
                        "delta": 0.031,
                        "delta_ci": [-0.008, 0.07],
                        "verdict": "inconclusive",
                    }
                },
            },
        },
    }


def test_training_from_tokens_and_price(tmp_path):
    suite = make_suite(tmp_path)
    suite.variant("ft").training.cost_usd = None
    suite.variant("ft").training.tokens = 5.1e6
    suite.variant("ft").training.price_per_1m = 8.0
    suite.variant("ft").training.epochs = 2
    entry = ledger_entry(suite, make_summary())
    assert entry["variants"]["ft"]["training_usd"] == pytest.approx(5.1 * 8.0 * 2)


def test_lineage_sums_by_hand():
    history = [
        past_run("r1", model="m1", training=30.0, eval_cost=1.0, delta=0.01),
        past_run("r2", model="m1", training=30.0, eval_cost=1.5, delta=0.02),  # same model: re-run
        past_run("r3", model="m2", training=25.0, eval_cost=2.0, delta=-0.01),
    ]
    current = {
        "metric": "macro_f1",
        "variants": {
            "ft": {"model": "m3", "training_usd": 10.0, "eval_cost_usd": 0.5, "delta": 0.015}
        },
    }
    led = lineage("ft", history, current)
    assert led["iterations"] == 3
    assert led["models"] == ["m1", "m2", "m3"]
    assert led["runs"] == 4
    assert led["training_usd"] == pytest.approx(30 + 25 + 10)
    assert led["eval_usd"] == pytest.approx(1.0 + 1.5 + 2.0 + 0.5)
    assert led["spent_usd"] == pytest.approx(70.0)
    assert led["best_delta"] == pytest.approx(0.02)
    assert led["passed_before"] is False


def test_a_lost_model_trained_again_after_a_run_is_its_iteration_not_a_new_one():
    """Evaluated m1 was deleted and trained again (job j2, `retrain_of` j1) as m2, evaluated in
    turn; then the settings changed and j3 trained m3. Iterations: m1 (m2 is m1 again) and m3;
    every job's training is paid once."""
    jobs = [
        {"job_id": "j1", "status": "succeeded", "model_id": "m1", "cost_usd": 30.0},
        {
            "job_id": "j2",
            "status": "succeeded",
            "model_id": "m2",
            "cost_usd": 28.0,
            "retrain_of": "j1",
        },
        {"job_id": "j3", "status": "succeeded", "model_id": "m3", "cost_usd": 10.0},
    ]
    history = [
        past_run("r1", model="m1", training=30.0, eval_cost=1.0, delta=0.01),
        past_run("r2", model="m2", training=28.0, eval_cost=1.0, delta=0.01),
    ]
    led = lineage("ft", history, {"metric": "macro_f1", "variants": {}}, jobs)
    assert led["iterations"] == 2 and led["models"] == ["m1", "m3"]
    assert led["training_usd"] == pytest.approx(30 + 28 + 10)
    assert [row["model"] for row in led["history"]] == ["m1", "m2"]  # what each run evaluated
    assert limit_reached(led, 2, None) == "2 of 2 iterations"
    # A retrain of a retrain is still the first model's iteration.
    jobs.insert(2, {"job_id": "j4", "status": "succeeded", "model_id": "m4", "retrain_of": "j2"})
    current = {"metric": "macro_f1", "variants": {"ft": {"model": "m4", "training_usd": 5.0}}}
    assert lineage("ft", history, current, jobs)["models"] == ["m1", "m3"]


def test_best_delta_ignores_other_metrics_and_pass_is_remembered():
    hyp = {"metric": "accuracy", "test": "superiority", "margin": 0.05, "confidence": 0.95}
    history = [
        past_run("r1", model="m1", delta=0.30, hypothesis=hyp),
        past_run("r2", model="m2", delta=0.02, verdict="pass"),
    ]
    current = {"metric": "macro_f1", "variants": {"ft": {"model": "m3", "delta": 0.01}}}
    led = lineage("ft", history, current)
    assert led["best_delta"] == pytest.approx(0.02)
    assert led["passed_before"] is True


def test_lineage_without_entries():
    led = lineage("new", [past_run("r1")], {"metric": "macro_f1", "variants": {}})
    assert led["iterations"] == 0 and led["spent_usd"] == 0 and led["best_delta"] is None


def test_limit_reached():
    led = {"iterations": 3, "spent_usd": 120.0}
    assert limit_reached(led, 3, None) == "3 of 3 iterations"
    assert limit_reached(led, 4, None) is None
    assert limit_reached(led, 3, 100) == "3 of 3 iterations, $120 of $100 budget"
    assert limit_reached(led, None, None) is None


def test_usd():
    assert usd(61.2) == "$61"
    assert usd(1234.5) == "$1,234"
    assert usd(0.8) == "$0.80"
    assert usd(0.0042) == "$0.0042"
    assert usd(0) == "$0"


def test_local_history_and_decide_without_tracking_store(tmp_path):
    import json

    from harness.decide.history import LocalHistory, gather, local_history, merge_histories
    from harness.track.history import MlflowHistory

    suite = make_suite(tmp_path)
    runs = tmp_path / "runs"
    for run_id, model, verdict in (
        ("20261125-100000-aaaa", "m1", "fail"),
        ("20261125-110000-bbbb", "m2", "fail"),
    ):
        d = runs / "guarded" / run_id
        d.mkdir(parents=True)
        entry = past_run(run_id, model=model, verdict=verdict)
        s = {
            "run_id": run_id,
            "started_at": run_id,
            "hypothesis": entry["hypothesis"],
            "ledger_entry": entry["ledger_entry"],
            "guard": {"verdicts": {"ft": {"verdict": verdict}}},
        }
        (d / "summary.json").write_text(json.dumps(s))
    (runs / "guarded" / "broken").mkdir()
    (runs / "guarded" / "broken" / "summary.json").write_text("{not json")
    hist = local_history(runs, "guarded")
    assert [h["run_id"] for h in hist] == ["20261125-100000-aaaa", "20261125-110000-bbbb"]
    assert hist[0]["verdicts"] == {"ft": "fail"}
    assert local_history(None, "guarded") == [] and local_history(runs, "other") == []

    # A tracking store that does not exist yet has no history: the local runs make the ledger.
    summary = make_summary((0.01, -0.01, 0.03), run_id="20261125-120000-cccc")
    uri = f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"
    history, notes = gather(suite.name, MlflowHistory(uri), LocalHistory(runs))
    assert notes == []
    out = decided(suite, summary, history)
    v = out["guard"]["verdicts"]["ft"]
    assert v["verdict"] == "abandon" and v["ledger"]["iterations"] == 3
    assert not (tmp_path / "none").exists()  # nothing created just to read history

    remote = [{"run_id": "20261125-110000-bbbb", "from": "mlflow"}]
    merged = merge_histories(remote, hist)
    assert [(h["run_id"], h.get("from")) for h in merged] == [
        ("20261125-100000-aaaa", None),
        ("20261125-110000-bbbb", "mlflow"),
    ]


def test_a_run_that_could_not_be_judged_is_no_iteration():
    """Every call failed in r2: its spend counts, its model and −88 pts do not."""
    failed = past_run("r2", model="m2", training=25.0, eval_cost=0.5, delta=-0.88)
    failed["ledger_entry"]["variants"]["ft"]["judged"] = False
    history = [past_run("r1", model="m1", training=30.0, eval_cost=1.0, delta=0.01), failed]
    led = lineage("ft", history, {"metric": "macro_f1", "variants": {}})
    assert led["iterations"] == 1 and led["models"] == ["m1"]
    assert [r["run_id"] for r in led["history"]] == ["r1"]
    assert led["best_delta"] == 0.01
    assert led["eval_usd"] == pytest.approx(1.5)
