"""The judge's settings: `- judge: {...}` / `- preference: {...}` entries, validated and read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.score import registry as M

SCALES = ("pass_fail", "1-5")
KINDS = ("judge", "preference")
_KEYS = {
    "judge": {"model", "rubric", "scale", "repeats", "second_model"},
    "preference": {"model", "rubric"},
}
_COMMON = {"api_base", "params", "pricing", "timeout"}


@dataclass(frozen=True)
class JudgeConfig:
    kind: str  # judge | preference
    model: str
    rubric: str
    scale: str = "pass_fail"
    repeats: int = 1
    second_model: str | None = None
    api_base: str | None = None
    params: dict = field(default_factory=dict)
    pricing: dict | None = None
    timeout: float = 60.0

    @property
    def models(self) -> list[str]:
        return [self.model] + ([self.second_model] if self.second_model else [])


# ---------------------------------------------------------------- configuration


def check_args(name: str, args: dict, spec: Any, fail, key: tuple) -> None:
    """Validate a `judge` / `preference` entry (its `@metric` check)."""
    example = (
        "`- judge: {model: openai/gpt-4o-mini, rubric: 'Is it polite?', scale: pass_fail}`"
        if name == "judge"
        else "`- preference: {model: openai/gpt-4o-mini, rubric: 'Which reply is friendlier?'}`"
    )
    unknown = sorted(set(args) - _KEYS[name] - _COMMON)
    if unknown:
        allowed = ", ".join(sorted(_KEYS[name] | _COMMON))
        fail(f"unknown option(s) {unknown} for {name} — allowed: {allowed}", key)
    for req in ("model", "rubric"):
        if not isinstance(args.get(req), str) or not args.get(req, "").strip():
            fail(f"{name} needs `{req}:` — write {example}", key)
    if name == "judge":
        if str(args.get("scale", "pass_fail")) not in SCALES:
            fail(f"judge scale must be pass_fail or 1-5 (got {args.get('scale')!r})", key)
        rep = args.get("repeats", 1)
        if not isinstance(rep, int) or isinstance(rep, bool) or rep < 1:
            fail(f"judge repeats must be a whole number >= 1 (got {rep!r})", key)
    if name == "preference" and len(spec.variants) < 2:
        fail("preference compares each variant with the baseline — add a second variant", key)
    pricing = args.get("pricing")
    if pricing is not None and (
        not isinstance(pricing, dict) or set(pricing) != {"input_per_1m", "output_per_1m"}
    ):
        fail(f"{name} pricing must be {{input_per_1m: ..., output_per_1m: ...}}", key)
    if args.get("params") is not None and not isinstance(args.get("params"), dict):
        fail(f"{name} params must be a mapping, e.g. {{temperature: 0}}", key)


def configs(suite: Any) -> list[JudgeConfig]:
    """The judge/preference entries of a loaded suite (already validated)."""
    out = []
    for entry in suite.spec.metrics:
        name, args = M.entry_name(entry)
        if name not in KINDS:
            continue
        repeats = int(args.get("repeats", 1)) if name == "judge" else 1
        params = {"temperature": 0 if repeats == 1 else 0.7, "max_tokens": 256}
        params.update(args.get("params") or {})
        out.append(
            JudgeConfig(
                kind=name,
                model=args["model"],
                rubric=args["rubric"].strip(),
                scale=str(args.get("scale", "pass_fail")) if name == "judge" else "pass_fail",
                repeats=repeats,
                second_model=args.get("second_model") if name == "judge" else None,
                api_base=args.get("api_base"),
                params=params,
                pricing=args.get("pricing"),
                timeout=float(args.get("timeout", 60.0)),
            )
        )
    return out
