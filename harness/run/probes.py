"""`harness diagnose --probe`: a few more calls, on the wrong examples only, that measure a cause
the run could not.

- repeats: the diagnosed variant asked 3 times per wrong example at its own temperature (the
  first call is the run's own, from the cache): do its answers disagree? (inconsistent)
- stronger: the diagnosed variant with a stronger model (`--stronger MODEL` or the suite's
  `diagnose: {stronger: MODEL}`): does it get them right? (capability)
- gold: the diagnosed variant handed each wrong example's gold passages (`data.gold`, from the
  corpus of the suite's rag variant, `retrieval.method: gold`): does the knowledge fix them?
  (knowledge, apart from whether a search would find it)

Each probe is a derived suite (the run's suite with one extra variant extending the diagnosed
one, and a test split of just the wrong examples) run by harness.run.pipeline: its calls go
through the engine and the run's response cache (runs/.cache.sqlite), and what they cost is the
probe run's spend: runs/<suite>.probe/<run-id>, in MLflow like any run. Priced before anything is sent (`estimate`), so the CLI can ask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.calls._litellm import needs_local_provider
from harness.calls.engine import litellm_prices, price_tokens
from harness.data.dataset import load_dataset
from harness.diagnose.evidence import Calls, to_call
from harness.errors import SuiteError
from harness.run.options import RunOptions
from harness.run.pipeline import run_suite
from harness.rundir.reader import RunFiles, resolved_suite
from harness.score.registry import validate_suite
from harness.suite.kinds import GOLD_METHOD, KINDS
from harness.suite.model import SuiteFile
from harness.suite.resolve import resolve
from harness.suite.secrets import masked_credentials

PROBES = ("repeats", "stronger", "gold")
PROBE_REPEATS = 3
PROBES_DIR = "probes"


@dataclass
class Probe:
    kind: str
    variant: str  # the probe's variant name in its derived suite
    model: str
    ids: list[str]  # the wrong examples it asks
    new_calls: int  # calls not already in the run
    usd: float | None  # estimated cost of the new calls; None when the model has no price
    note: str = ""

    def line(self) -> str:
        cost = (
            "free (a local model)"
            if self.usd == 0
            else (
                "price unknown (no price for the model)"
                if self.usd is None
                else f"~${self.usd:.4g}"
            )
        )
        return (
            f"probe {self.kind}: {self.model} on {len(self.ids)} wrong example(s), "
            f"{self.new_calls} new call(s), {cost}" + (f" — {self.note}" if self.note else "")
        )


def plan(
    run: RunFiles, diagnosis: dict[str, Any], kinds: list[str], stronger: str | None
) -> list[Probe]:
    """The probes asked for, priced from the diagnosed variant's own token counts."""
    name = diagnosis["variant"]
    ids = [e["id"] for e in diagnosis["examples"] if e["cause"] != "failed"]
    records = [r for r in run.records.get(name) or [] if r.get("id") in set(ids)]
    tin = _mean([r.get("tokens_in") for r in records])
    tout = _mean([r.get("tokens_out") for r in records])
    spec = run.variant_spec(name)
    masked = masked_credentials(spec, f"{name}: ")
    if masked:
        raise SuiteError(
            f"{run.path / 'suite.yaml'}: {', '.join(masked)} was written literally and the run "
            "keeps it masked (***): a probe would send *** as the credential — write it as "
            "`${env:NAME}` in the suite, rerun, then probe"
        )
    temperature = (spec.get("params") or {}).get("temperature")
    out = []
    for kind in kinds:
        if kind not in PROBES:
            raise SuiteError(f"unknown probe {kind!r} — choose repeats, stronger or gold")
        if kind == "gold":
            gold_corpus(run)  # exit 2 before any call when the suite cannot say what is gold
            model, n_new, note = diagnosis["model"], len(ids), "with each example's gold passages"
        elif kind == "repeats":
            model = diagnosis["model"]
            n_new = len(ids) * (PROBE_REPEATS - 1)
            note = (
                "at temperature 0 repeats only disagree where the provider is nondeterministic"
                if not temperature
                else f"at temperature {temperature:g}"
            )
        else:
            model = stronger or str((run.suite.get("diagnose") or {}).get("stronger") or "")
            if not model:
                raise SuiteError(
                    "--probe stronger needs a model: pass --stronger MODEL, or set "
                    "`diagnose: {stronger: MODEL}` in the suite"
                )
            n_new = len(ids)
            note = ""
        out.append(
            Probe(
                kind,
                f"{name}.{kind}",
                model,
                ids,
                n_new,
                _price(model, spec, tin, tout, n_new),
                note,
            )
        )
    return out


def _mean(values: list[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    return sum(nums) / len(nums) if nums else None


def _price(model: str, spec: dict, tin: float | None, tout: float | None, n: int) -> float | None:
    if needs_local_provider(model):
        return 0.0
    if tin is None or tout is None:
        return None
    # The variant's own `pricing:` only prices its own model.
    if spec.get("pricing") and model == spec.get("model"):
        one = price_tokens(spec["pricing"], int(tin), int(tout))
        return None if one is None else one * n
    prices = litellm_prices(model)
    return None if prices is None else (tin * prices[0] + tout * prices[1]) * n


def run_probes(
    run: RunFiles, probes: list[Probe], tracking_uri: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run each probe; returns (diagnose()'s `probes` argument, one fact line per probe run)."""
    answers: dict[str, Any] = {}
    facts = []
    for p in probes:
        suite = _derived(run, p)
        outcome = run_suite(
            suite,
            RunOptions(
                variants=[p.variant],
                # The run's runs/ (its response cache): runs/<suite>.probe/<run-id>.
                runs_dir=run.path.parent.parent,
                tracking_uri=tracking_uri,
                show_progress=False,
            ),
        )
        grouped: dict[str, list] = {}
        for r in outcome.records.get(p.variant) or []:
            call = to_call(r, suite.task)
            if call is not None:
                grouped.setdefault(str(r["id"]), []).append(call)
        answers[p.kind] = {ex: Calls(tuple(cs)) for ex, cs in grouped.items()}
        if p.kind == "stronger":
            answers["stronger_model"] = p.model
        stats = outcome.summary["variants"].get(p.variant) or {}
        facts.append(
            {
                "probe": p.kind,
                "model": p.model,
                "run_dir": str(outcome.run_dir),
                "examples": len(p.ids),
                "calls": stats.get("n_calls"),
                "spent_usd": stats.get("spent_usd"),
            }
        )
    return answers, facts


GOLD_CONTEXT = "Context:\n{% for c in context %}{{ c.text }}\n{% endfor %}\n"


def gold_corpus(run: RunFiles) -> dict[str, Any]:
    """The `retrieval:` of the gold probe: the corpus and chunking of the suite's first rag
    variant with a corpus, `method: gold` (each example gets its data.gold passages)."""
    suite = resolved_suite(run)
    if not suite.spec.data.gold:
        raise SuiteError(
            "--probe gold needs `data.gold` in the suite (the column naming each test "
            "example's gold passage ids) — add it and rerun, or add a `kind: rag` variant to "
            "measure knowledge"
        )
    for v in suite.variants:
        if KINDS[v.kind].retrieves and v.retrieval and v.retrieval.corpus and not v.retriever:
            spec = v.retrieval.model_dump(mode="json", exclude_none=True)
            spec.pop("embedding_model", None)
            spec.pop("query", None)
            return {**spec, "method": GOLD_METHOD}
    raise SuiteError(
        "--probe gold needs the passages: a `kind: rag` variant with `retrieval.corpus` (its "
        "corpus and chunking are used, each example getting its data.gold passages)"
    )


def _derived(run: RunFiles, p: Probe):
    """The run's suite, with the probe variant and a test split of the wrong examples only."""
    base = resolved_suite(run)
    dataset = load_dataset(base, hash_files=False)
    wanted = set(p.ids)
    rows = [e.record for e in dataset.test if e.id in wanted]
    subset = run.path / PROBES_DIR / f"{p.variant}.test.jsonl"
    subset.parent.mkdir(parents=True, exist_ok=True)
    subset.write_text(
        "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows),
        encoding="utf-8",
    )
    raw = json.loads(json.dumps(base.raw, default=str))
    data = {k: v for k, v in raw["data"].items() if k != "sample"}
    data["test"] = str(subset.resolve())
    diagnosed = p.variant.rsplit(".", 1)[0]
    probe: dict[str, Any] = {"name": p.variant, "extends": diagnosed}
    if p.kind == "repeats":
        probe["repeats"] = PROBE_REPEATS
    elif p.kind == "gold":
        retrieval = gold_corpus(run)
        user = str(base.variant(diagnosed).user)
        if "context" not in user:  # the diagnosed prompt never shows passages: put them first
            user = GOLD_CONTEXT + user
        probe.update(kind="rag", retrieval=retrieval, user=user)
    else:
        probe["model"] = p.model
    raw.update(
        name=f"{base.name}.probe",
        data=data,
        variants=[*raw["variants"], probe],
        baseline=diagnosed,
    )
    for k in ("guard", "volume", "value", "diagnose"):
        raw.pop(k, None)
    return validate_suite(resolve(base.path, raw, SuiteFile.model_validate(raw), {}))
