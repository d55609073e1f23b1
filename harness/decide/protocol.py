"""The registered protocol: everything that decides a verdict, fingerprinted when a lineage first
runs (or by `harness register`), and every later run diffed against it.

A verdict means something only under the protocol it was registered with: the test examples,
the family of hypotheses (terms, correction, sequential looks), the baseline's definition, the
dollar inputs and the limits. `amendments` compares a run with its lineage's protocol, line by
line. A change that cannot make a pass easier is "stricter" (recorded, shown, no flag); any
other is an "amendment": a pass under it is flagged (exit 1, never an honest pass for the
ledger) until `harness register --amend --why "…"` accepts it. Which is which, and why:
docs/concepts/protocol.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, ValidationError

from harness._util.jsonl import write_json_atomic
from harness.data.lineage import (
    PROTOCOL_DIR,
    protocol_path,
    read_protocol,
    registering_runs,
    unreadable_protocol,
)
from harness.decide.sentence import suite_number
from harness.suite.secrets import redact

STRICTER, AMENDMENT = "stricter", "amendment"


class Terms(BaseModel):
    """One hypothesis of the family, with its lineage's limits."""

    key: str
    candidate: str
    baseline: str
    metric: str
    test: str
    margin: float
    confidence: float
    max_iterations: int | None = None
    budget_usd: float | None = None

    def text(self) -> str:
        return (
            f"{self.candidate} vs {self.baseline}, {self.test} on {self.metric}, margin "
            f"{suite_number(self.margin)}, confidence {suite_number(self.confidence)}"
        )


class BaselineDefinition(BaseModel):
    """What the baseline is: a change here changes what every candidate is measured against."""

    name: str
    model: str
    host: str  # the endpoint's host ("provider default" without api_base)
    system: str | None = None
    user: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    few_shot: dict[str, Any] | None = None
    retrieval: dict[str, Any] | None = None
    # What it must answer in, and a RAG baseline's own retriever ("package.module:function").
    response_format: dict[str, Any] | str | None = None
    retriever: str | None = None
    repeats: int = 1


class Dollars(BaseModel):
    """Inputs of every dollar figure: prices per variant, what an error costs, volume."""

    pricing: dict[str, dict[str, float] | None] = Field(default_factory=dict)
    error_cost_usd: float | None = None
    per_class: dict[str, float] | None = None
    monthly_requests: float | None = None
    amortise_months: float | None = None


class Protocol(BaseModel):
    lineage: str
    suite: str
    registered_at: str
    run_id: str | None = None  # None: registered by `harness register` before any run
    # `harness register` registered it (run_id is then the first run, which scored the baseline).
    by_register: bool = False
    test_sha256: str | None = None
    examples: list[str]  # harness.data.lineage.fingerprints, in data order
    hypotheses: list[Terms]
    correction: str = "holm"
    sequential_looks: int | None = None
    baseline: BaselineDefinition
    dollars: Dollars
    # The baseline's score per example fingerprint in the registered run: what a changed
    # baseline is judged by, and what drift is measured from.
    baseline_scores: dict[str, float] = Field(default_factory=dict)
    accepted: list[dict[str, Any]] = Field(default_factory=list)  # register --amend records

    def fingerprint(self) -> str:
        """12 hex digits of what decides a verdict (not who registered it or when)."""
        keep = self.model_dump(
            exclude={
                "registered_at",
                "run_id",
                "baseline_scores",
                "accepted",
                "suite",
                "by_register",
            }
        )
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]

    def lines(self) -> list[str]:
        """How `harness ledger` shows it."""
        if self.by_register or not self.run_id:
            where = "harness register" + (
                f" (baseline scored by run {self.run_id})" if self.run_id else ""
            )
        else:
            where = f"run {self.run_id}"
        out = [
            f"protocol {self.fingerprint()} registered by {where} at {self.registered_at}: "
            f"{len(self.examples)} test examples (sha256 {(self.test_sha256 or '?')[:12]}), "
            f"correction {self.correction}"
            + (f", {self.sequential_looks} sequential looks" if self.sequential_looks else "")
        ]
        for h in self.hypotheses:
            limits = []
            if h.max_iterations is not None:
                limits.append(f"max_iterations {h.max_iterations}")
            if h.budget_usd is not None:
                limits.append(f"budget ${h.budget_usd:g}")
            out.append(f"  {h.key}: {h.text()}" + (f"; {', '.join(limits)}" if limits else ""))
        b = self.baseline
        out.append(f"  baseline {b.name}: {b.model} at {b.host}")
        d = self.dollars
        prices = ", ".join(
            f"{n} {p['input_per_1m']:g}/{p['output_per_1m']:g}" if p else f"{n} unpriced"
            for n, p in d.pricing.items()
        )
        money = [f"$ per 1M in/out tokens: {prices}"]
        # Unset terms are said as such, not as "None" (no `value:`/`volume:` in the suite).
        money.append(
            f"error cost ${d.error_cost_usd:g}"
            if d.error_cost_usd is not None
            else "error cost not set (no `value:`)"
        )
        money.append(
            f"volume {d.monthly_requests:,.0f} requests/month"
            if d.monthly_requests is not None
            else "volume not set (no `volume:`)"
        )
        if d.amortise_months is not None:
            money.append(f"training amortised over {d.amortise_months:g} months")
        out.append("  dollars: " + "; ".join(money))
        for a in self.accepted:
            out.append(f"  amended by hand at {a['at']}: {a['why']} ({'; '.join(a['changes'])})")
        return out


class Amendment(BaseModel):
    """One difference between a run and its lineage's protocol."""

    key: str
    old: str
    new: str
    kind: Literal["stricter", "amendment"]

    def line(self) -> str:
        return f"{self.key}: {self.old} → {self.new}"


# ---------------------------------------------------------------- building


def _endpoint(url: str) -> str:
    p = urlparse(url)
    host = p.netloc.rpartition("@")[2]  # never a URL's user:password
    return f"{host}{p.path.rstrip('/')}" if host else url


def _host(api_base: str | None) -> str:
    """The endpoint as the protocol keeps it: host, port and path (another path of a host can
    serve another model). An `${env:…}` reference is kept as written, with a digest of what it
    resolves to now: pointing the variable elsewhere changes the baseline, and its value (which
    may be secret) is never written."""
    if not api_base:
        return "provider default"
    from harness.errors import SuiteError
    from harness.suite.secrets import expand_env

    try:
        resolved = expand_env(api_base)
    except SuiteError:
        resolved = api_base
    shown = _endpoint(api_base)
    if resolved == api_base:
        return shown
    digest = hashlib.sha256(_endpoint(resolved).encode()).hexdigest()[:8]
    return f"{shown} (resolves to #{digest})"


def baseline_definition(v) -> BaselineDefinition:
    return BaselineDefinition(
        name=v.name,
        model=v.model,
        host=_host(v.api_base),
        system=v.system,
        user=v.user,
        # Masked as runs/…/suite.yaml is: the protocol file, the amendment lines and the MLflow
        # tags show these params, and a rotated key is no change to what the baseline is.
        params=redact(dict(v.params or {})),
        few_shot=v.few_shot.model_dump() if v.few_shot else None,
        retrieval=v.retrieval.model_dump() if v.retrieval else None,
        response_format=v.response_format,
        retriever=v.retriever,
        repeats=v.repeats,
    )


def build(
    suite,
    lineage: str,
    examples: list[str],
    test_sha256: str | None,
    run_id: str | None = None,
    baseline_scores: dict[str, float] | None = None,
) -> Protocol:
    """The protocol a suite states now."""
    value, volume = suite.spec.value, suite.spec.volume
    return Protocol(
        lineage=lineage,
        suite=suite.name,
        registered_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        run_id=run_id,
        test_sha256=test_sha256,
        examples=examples,
        # Every field of the suite's Hypothesis that the protocol keeps.
        hypotheses=[
            Terms(**{k: getattr(h, k) for k in Terms.model_fields}) for h in suite.hypotheses()
        ],
        correction=suite.correction,
        sequential_looks=suite.sequential.looks if suite.sequential else None,
        baseline=baseline_definition(suite.variant(suite.baseline)),
        dollars=Dollars(
            pricing={v.name: v.pricing.model_dump() if v.pricing else None for v in suite.variants},
            error_cost_usd=value.error_cost_usd if value else None,
            per_class=dict(value.per_class) if value and value.per_class else None,
            monthly_requests=volume.monthly_requests if volume else None,
            amortise_months=value.amortise_months if value else None,
        ),
        baseline_scores=baseline_scores or {},
    )


# ---------------------------------------------------------------- the store


def load(runs_dir, lineage: str | None) -> Protocol | None:
    data = read_protocol(runs_dir, lineage)
    if data is None:
        return None
    try:
        return Protocol.model_validate(data)
    except ValidationError:
        raise unreadable_protocol(protocol_path(runs_dir, str(lineage)), "not a protocol") from None


def check_readable(runs_dir) -> None:
    """Every registered protocol a run's conclusion may read (to find its lineage) reads back:
    checked before the first call, not after the run has paid for them."""
    for path in sorted((Path(runs_dir) / PROTOCOL_DIR).glob("*.json")):
        load(runs_dir, path.stem)


def save(runs_dir, protocol: Protocol) -> Path:
    path = protocol_path(runs_dir, protocol.lineage)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, protocol.model_dump())
    return path


def save_first(runs_dir, protocol: Protocol) -> Protocol:
    """Register `protocol` unless its lineage got one meanwhile; returns the registered one.

    Two runs started at once on a fresh lineage both find no protocol: a plain save would let
    the second overwrite the first's registration (and its baseline scores). A hard link of a
    complete temp file is an atomic create-if-absent, so exactly one registration wins and
    the other run is judged against it."""
    path = protocol_path(runs_dir, protocol.lineage)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write_json_atomic(tmp, protocol.model_dump())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return load(runs_dir, protocol.lineage) or protocol
    except OSError:  # a file system without hard links: check, then replace (a narrow race)
        registered = load(runs_dir, protocol.lineage)
        if registered is not None:
            return registered
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return protocol


def accept(
    registered: Protocol,
    current: Protocol,
    why: str,
    changes: list[Amendment],
    replaced: list[str] | None = None,
) -> Protocol:
    """`harness register --amend --why`: the current protocol becomes the lineage's, the
    accepted changes recorded (and named on every later verdict). `replaced`: fingerprints
    earlier runs recorded whose protocol file is gone, accepted as replaced."""
    record: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "why": why.strip(),
        "changes": [a.line() for a in changes],
        "from": registered.fingerprint(),
    }
    if replaced:
        record["replaced"] = replaced
    # The registered baseline scores stay the reference while the baseline is the same one.
    same_baseline = registered.baseline == current.baseline
    # Registered now, by `harness register`: run_id only names the run whose baseline scores
    # are kept (a changed baseline is scored by the next run, which registers nothing).
    return current.model_copy(
        update={
            "lineage": registered.lineage,
            "by_register": True,
            "run_id": registered.run_id if same_baseline else None,
            "accepted": [*registered.accepted, record],
            "baseline_scores": {
                k: s for k, s in registered.baseline_scores.items() if k in set(current.examples)
            }
            if same_baseline
            else {},
        }
    )


# ---------------------------------------------------------------- the diff


def _one(key, old, new, stricter: bool) -> Amendment:
    return Amendment(key=key, old=str(old), new=str(new), kind=STRICTER if stricter else AMENDMENT)


def _limit(key, old, new, out: list[Amendment], fewer_is_stricter: bool = True) -> None:
    if old == new:
        return
    tighter = fewer_is_stricter and new is not None and (old is None or new < old)
    out.append(
        _one(
            key,
            "none" if old is None else f"{old:g}",
            "none" if new is None else f"{new:g}",
            tighter,
        )
    )


def _hypotheses(reg: list[Terms], cur: list[Terms], out: list[Amendment]) -> None:
    now = {h.key: h for h in cur}
    for r in reg:
        c = now.pop(r.key, None)
        k = f"hypothesis {r.key}"
        if c is None:
            out.append(_one(k, r.text(), "dropped", False))
            continue
        if (c.candidate, c.baseline, c.metric, c.test) != (
            r.candidate,
            r.baseline,
            r.metric,
            r.test,
        ):
            out.append(_one(k, r.text(), f"replaced by {c.text()}", False))
            continue
        if c.margin != r.margin:
            harder = c.margin > r.margin if c.test == "superiority" else c.margin < r.margin
            out.append(_one(f"{k} margin", suite_number(r.margin), suite_number(c.margin), harder))
        if c.confidence != r.confidence:
            out.append(
                _one(
                    f"{k} confidence",
                    suite_number(r.confidence),
                    suite_number(c.confidence),
                    c.confidence > r.confidence,
                )
            )
        # Each iteration is tested at α / max_iterations (rule.reuse_iterations): fewer raise
        # every later iteration's level, more spend α the earlier ones did not reserve.
        _limit(f"{k} max_iterations", r.max_iterations, c.max_iterations, out, False)
        _limit(f"{k} budget_usd", r.budget_usd, c.budget_usd, out)
    # A hypothesis added to the family only lowers the others' Holm levels.
    for c in now.values():
        out.append(_one(f"hypothesis {c.key}", "—", f"added: {c.text()}", True))


def _examples(reg: list[str], cur: list[str], out: list[Amendment]) -> None:
    r, c = set(reg), set(cur)
    removed, added = len(r - c), len(c - r)
    if not removed and not added:
        return
    parts = [f"{n} {w}" for n, w in ((removed, "removed"), (added, "added")) if n]
    out.append(
        _one(
            "test set",
            f"{len(r)} examples",
            f"{len(c)} examples ({', '.join(parts)})",
            removed == 0,
        )
    )


def _baseline(
    reg: BaselineDefinition, cur: BaselineDefinition, effect: str | None, out: list[Amendment]
) -> None:
    changed = [f for f in BaselineDefinition.model_fields if getattr(reg, f) != getattr(cur, f)]
    if not changed:
        return
    # Judged by its effect on the shared examples: a better baseline makes every test harder.
    for f in changed:
        old, new = getattr(reg, f), getattr(cur, f)
        if f in ("system", "user", "params", "few_shot", "retrieval", "response_format"):
            old, new = _short(old), _short(new)
        why = {"better": "scores higher", "same": "scores the same", "worse": "scores lower"}.get(
            effect or "", "effect unknown"
        )
        out.append(
            _one(f"baseline {f}", old, f"{new} ({why} on the shared examples)", effect == "better")
        )


def _short(x: Any) -> str:
    text = x if isinstance(x, str) else json.dumps(x, sort_keys=True, default=str)
    text = " ".join(str(text).split())
    return repr(text if len(text) <= 60 else text[:57] + "…")


def _dollars(reg: Dollars, cur: Dollars, roles: dict[str, str], out: list[Amendment]) -> None:
    for name in sorted(set(reg.pricing) | set(cur.pricing)):
        old, new = reg.pricing.get(name), cur.pricing.get(name)
        if old == new:
            continue
        key = f"price of {name} ($ per 1M in/out)"
        shown = [
            f"{p['input_per_1m']:g}/{p['output_per_1m']:g}" if p else "unpriced" for p in (old, new)
        ]
        if old and new:
            up = (
                new["input_per_1m"] >= old["input_per_1m"]
                and new["output_per_1m"] >= old["output_per_1m"]
            )
            down = (
                new["input_per_1m"] <= old["input_per_1m"]
                and new["output_per_1m"] <= old["output_per_1m"]
            )
            # A dearer candidate or a cheaper baseline only makes the candidate's case harder.
            stricter = (roles.get(name) == "baseline" and down) or (
                roles.get(name) == "candidate" and up
            )
        else:
            stricter = False
        out.append(_one(key, *shown, stricter))
    # What an error costs, the volume and the amortisation move the dollars both ways depending
    # on which variant errs more: any change is an amendment.
    for f in ("error_cost_usd", "per_class", "monthly_requests", "amortise_months"):
        old, new = getattr(reg, f), getattr(cur, f)
        if old != new:
            out.append(_one(f, old, new, False))


def amendments(
    registered: Protocol, current: Protocol, baseline_effect: str | None = None
) -> list[Amendment]:
    """Every difference of `current` from `registered`, stricter or amendment.
    `baseline_effect`: "better" / "worse" — the baseline's score on the shared examples in
    this run against the registered run's (None: unknown)."""
    out: list[Amendment] = []
    _examples(registered.examples, current.examples, out)
    _hypotheses(registered.hypotheses, current.hypotheses, out)
    if current.correction != registered.correction:
        out.append(
            _one(
                "correction",
                registered.correction,
                current.correction,
                current.correction == "holm",
            )
        )
    if current.sequential_looks != registered.sequential_looks:
        out.append(
            _one("sequential looks", registered.sequential_looks, current.sequential_looks, False)
        )
    _baseline(registered.baseline, current.baseline, baseline_effect, out)
    roles: dict[str, str] = {}
    for h in registered.hypotheses:
        for name, role in ((h.candidate, "candidate"), (h.baseline, "baseline")):
            roles[name] = role if roles.get(name, role) == role else "both"
    _dollars(registered.dollars, current.dollars, roles, out)
    return out


# ---------------------------------------------------------------- a run against its protocol


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def baseline_effect(
    registered: dict[str, float], current: dict[str, float]
) -> tuple[str | None, str | None]:
    """("better" | "same" | "worse" | None, a sentence) for the baseline on the examples both runs scored."""
    shared = sorted(set(registered) & set(current))
    if not shared:
        return None, None
    old, new = _mean([registered[k] for k in shared]), _mean([current[k] for k in shared])
    text = f"{new:.1%} on the {len(shared)} shared examples, {old:.1%} in the registered run"
    # Strictly better only: a baseline that scores the same still moves every cost ratio.
    return ("better" if new > old else "same" if new == old else "worse"), text


def drift(
    registered: dict[str, float], current: dict[str, float]
) -> tuple[float, float, float, float, int] | None:
    """(registered mean, its interval low, high, current mean, n) when the baseline's score on the
    shared examples left its own registered 95% interval; None when it did not."""
    from statsmodels.stats.weightstats import DescrStatsW

    shared = sorted(set(registered) & set(current))
    if len(shared) < 2:
        return None
    old = [registered[k] for k in shared]
    new = _mean([current[k] for k in shared])
    low, high = DescrStatsW(old).tconfint_mean(alpha=0.05)
    if low - 1e-12 <= new <= high + 1e-12:
        return None
    return _mean(old), float(low), float(high), new, len(shared)


def recorded_protocols(
    history: list[dict] | None, lineage: str, run_id: str | None = None
) -> dict[str, str]:
    """{protocol fingerprint: the first run that recorded it} of the lineage's counted runs
    (summary.json, MLflow tags): the protocol file is only a file, so what the ledger recorded
    says whether it was replaced."""
    recorded: dict[str, str] = {}
    for r in history or []:
        fp = r.get("protocol")
        if (
            fp
            and r.get("lineage") == lineage
            and r.get("run_id") != run_id
            and (r.get("ledger_entry") or {}).get("limit") is None
        ):
            recorded.setdefault(str(fp), str(r.get("run_id")))
    return recorded


def replaced_protocols(registered: Protocol, recorded: dict[str, str]) -> list[tuple[str, str]]:
    """Recorded fingerprints the registered protocol neither is nor accepted as replaced."""
    known = {registered.fingerprint()}
    for a in registered.accepted:
        known.update([a.get("from"), *(a.get("replaced") or [])])
    return [(fp, r) for fp, r in recorded.items() if fp not in known]


def review(
    suite,
    runs_dir,
    lineage: str,
    examples: list[str],
    test_sha256: str | None,
    scores: dict[str, float],
    run_id: str,
    counted: bool,
    overlap: float | None = None,
    history: list[dict] | None = None,
) -> dict[str, Any]:
    """summary.json's `protocol`: this run against its lineage's registered protocol.

    The first counted run of a lineage registers it (with the baseline's per-example scores).
    `scores`: this run's baseline score per example fingerprint. `history`: the lineage's
    earlier runs (harness.decide.history.gather), whose recorded protocol fingerprints tell a
    deleted or hand-edited protocol file from a registered one. Returns {"lineage",
    "fingerprint", "registered_run_id", "registered_now", "overlap", "amendments", "stricter",
    "accepted", "notes", "family"}."""
    current = build(suite, lineage, examples, test_sha256, run_id, scores)
    registered = load(runs_dir, lineage)
    out: dict[str, Any] = {
        "lineage": lineage,
        "fingerprint": current.fingerprint(),
        "registered_now": False,
        "overlap": overlap,
        "amendments": [],
        "stricter": [],
        "accepted": [],
        "notes": [],
        "family": [h.key for h in current.hypotheses],
    }
    # The fingerprints earlier counted runs were judged under (summary.json, MLflow tags): the
    # protocol file is only a file, so what the ledger recorded says whether it was replaced.
    # Only this lineage's runs: the history also holds the suite's runs on other test sets.
    recorded = recorded_protocols(history, lineage, run_id)
    if registered is None and counted:
        won = save_first(runs_dir, current)
        registered = None if won is current else won  # another run registered it first
    if registered is None:
        if counted:
            out["registered_now"] = True
            # Kept with the run too: a deleted protocol file must not free the lineage
            # (harness.data.lineage.find_lineage reads them back).
            out["examples"] = examples
        out["registered_run_id"] = run_id if counted else None
        if recorded:
            fp, first = next(iter(recorded.items()))
            out["amendments"].append(
                _one(
                    "protocol",
                    f"{fp} (registered in run {first})",
                    f"missing from {protocol_path(runs_dir, lineage)}; registered afresh from "
                    f"this run — restore the file to continue the registered protocol",
                    False,
                ).model_dump()
            )
        return out
    if counted and not registered.baseline_scores and registered.baseline == current.baseline:
        registered = registered.model_copy(update={"baseline_scores": scores, "run_id": run_id})
        save(runs_dir, registered)  # registered by `harness register`: the first run scores it
    out["registered_run_id"] = registered.run_id
    out["registered_by_register"] = registered.by_register
    # Another suite's registration (same test set, so the same lineage) is named as such.
    out["registered_suite"] = registered.suite if registered.suite != suite.name else None
    out["fingerprint"] = registered.fingerprint()
    out["family"] = [h.key for h in registered.hypotheses]
    out["accepted"] = registered.accepted
    edited = replaced_protocols(registered, recorded)
    if edited:
        fp, first = edited[-1]
        out["amendments"].append(
            _one(
                "protocol",
                f"{fp} (recorded by run {first})",
                f"edited by hand to {registered.fingerprint()} in "
                f"{protocol_path(runs_dir, lineage)}, not by `harness register --amend` — "
                "restore the file",
                False,
            ).model_dump()
        )
    effect, said = None, None
    if registered.baseline != current.baseline:
        effect, said = baseline_effect(registered.baseline_scores, scores)
        out["notes"].append(
            f"baseline {current.baseline.name} changed since the protocol was registered"
            + (f": it scores {said}" if said else "")
        )
    else:
        moved = drift(registered.baseline_scores, scores)
        if moved:
            old, low, high, new, n = moved
            out["notes"].append(
                f"baseline drift: {current.baseline.name} scores {new:.1%} on the {n} shared "
                f"examples, outside its registered interval [{low:.1%}, {high:.1%}] "
                f"({old:.1%} in run {registered.run_id}) — same definition, so the endpoint or "
                "model behind it changed"
            )
    for a in amendments(registered, current, effect):
        out["amendments" if a.kind == AMENDMENT else "stricter"].append(a.model_dump())
    # Said where a fresh start could have been expected: registered examples are missing.
    if overlap is not None and set(registered.examples) - set(examples):
        out["notes"].append(
            f"lineage {lineage} continued: {overlap:.0%} of the test examples are the registered ones"
        )
    return out


def amendment_lines(protocol: dict[str, Any] | None) -> list[str]:
    """The terminal's and report's lines: each amendment and stricter change, old → new."""
    if not protocol:
        return []
    reg = protocol.get("registered_run_id")
    where = (
        "registered by harness register"
        if protocol.get("registered_by_register") or not reg
        else f"registered in run {reg}"
    )
    if protocol.get("registered_suite"):
        where += f" of suite {protocol['registered_suite']}"
    lines = [
        f"protocol amendment ({where}): {a['key']}: {a['old']} → {a['new']} — "
        'a pass under it does not count until `harness register SUITE.yaml --amend --why "…"` '
        "accepts it"
        for a in protocol.get("amendments") or []
    ]
    lines += [
        f"protocol: stricter than registered (recorded): {a['key']}: {a['old']} → {a['new']}"
        for a in protocol.get("stricter") or []
    ]
    return lines + list(protocol.get("notes") or [])


# ---------------------------------------------------------------- harness register


def registered_by(registered: Protocol, suite) -> str:
    """ " (registered by suite X)" when another suite on the same test set registered the
    lineage: its amendments are to that suite's terms, not to anything this suite said."""
    return f" (registered by suite {registered.suite})" if registered.suite != suite.name else ""


def missing_registration(runs_dir, lineage: str) -> tuple[str, str] | None:
    """(fingerprint, run id) of the run that registered `lineage` when its protocol file is
    gone: the next counted run registers afresh and flags it (review), said before by check."""
    for s in registering_runs(runs_dir):
        if s["lineage"] == lineage:
            return str(s["protocol"].get("fingerprint")), str(s.get("run_id"))
    return None


def against_registered(suite, runs_dir) -> tuple[str, Protocol, Protocol | None]:
    """(lineage, the suite's protocol as it reads now, the lineage's registered one or None),
    read without a model call or a write (`harness register` and `harness check`)."""
    from harness.data.dataset import file_hash, load_dataset
    from harness.data.lineage import fingerprints
    from harness.finetune.records import suite_lineage

    test = suite.resolve_path(suite.spec.data.test)
    if not test.is_file():
        raise suite.fail(
            "test file not found — the protocol registers its examples", ("data", "test")
        )
    lineage = suite_lineage(suite, runs_dir)
    examples = fingerprints(load_dataset(suite, hash_files=False).test)
    current = build(suite, lineage, examples, file_hash(test))
    return lineage, current, load(runs_dir, lineage)


def register(
    suite,
    runs_dir,
    *,
    amend: bool = False,
    why: str | None = None,
    history: list[dict] | None = None,
) -> tuple[list[str], int]:
    """`harness register SUITE.yaml [--amend --why "…"]`: (lines to print, exit code).

    Registers the suite's protocol when its lineage has none; shows what differs from the
    registered one otherwise; with --amend, accepts the differences (recorded with the reason,
    named on every later verdict). `history`: the lineage's earlier runs, whose recorded
    protocol fingerprints show a protocol file deleted or replaced (an amendment too). Exit 1:
    amendments left unaccepted."""
    from harness.errors import SuiteError

    if amend and not (why or "").strip():
        raise SuiteError('--amend: say why with --why "…" (it is named on every later verdict)')
    lineage, current, registered = against_registered(suite, runs_dir)
    head: list[str] = []  # a fresh registration's lines
    fresh = False
    recorded = recorded_protocols(history, lineage)
    # A deleted file: the run that registered it keeps its fingerprint (runs/), whether or not
    # MLflow's history is at hand — registered afresh silently, every later run would flag it.
    gone = missing_registration(runs_dir, lineage) if registered is None else None
    if gone:
        recorded.setdefault(*gone)
    if registered is None:
        current = current.model_copy(update={"by_register": True})
        won = save_first(runs_dir, current)
        path = protocol_path(runs_dir, lineage)
        head = [f"registered the protocol of lineage {lineage} in {path}:", *current.lines()]
        registered, fresh = won, won is current
    replaced = replaced_protocols(registered, recorded)
    if fresh and not replaced:
        return head, 0
    changes = [
        _one(
            "protocol",
            f"{fp} (recorded by run {first})",
            f"replaced by {registered.fingerprint()} in {protocol_path(runs_dir, lineage)}",
            False,
        )
        for fp, first in replaced
    ] + amendments(registered, current)
    amended = [a for a in changes if a.kind == AMENDMENT]
    lines = [f"{a.kind}: {a.line()}" for a in changes]
    if not amended:
        said = "no amendment: " + (
            "stricter changes need no registration" if changes else "nothing changed"
        )
        return [f"lineage {lineage}: {said}", *lines, *registered.lines()], 0
    if not amend:
        return [
            *head,
            f"lineage {lineage}: {len(amended)} amendment(s) to the registered protocol "
            f"{registered.fingerprint()}{registered_by(registered, suite)}:",
            *lines,
            'a pass under them is flagged until accepted: harness register SUITE.yaml --amend --why "…"',
        ], 1
    accepted = accept(registered, current, why or "", amended, [fp for fp, _ in replaced])
    path = save(runs_dir, accepted)
    return [
        *head,
        f"lineage {lineage}: accepted {len(amended)} amendment(s) ({why.strip()}) in {path}; "
        "every later verdict names them:",
        *lines,
        *accepted.lines(),
    ], 0
