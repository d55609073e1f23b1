"""LLM-as-judge and pairwise preference for generation tasks (style, tone: no label to compare).

Suite entries (in `metrics:`):

    - judge: {model: openai/gpt-4o-mini, rubric: "...", scale: 1-5, repeats: 2, second_model: ...}
    - preference: {model: openai/gpt-4o-mini, rubric: "..."}

Optional keys of both: `api_base`, `params` (default temperature 0, or 0.7 when `repeats` >= 2 so
repeated judgements can disagree), `pricing` {input_per_1m, output_per_1m}, `timeout`.

How the numbers are made (after the variants ran; `judge_records`):
- `judge`: the judge model sees the input, the output, the reference (when the data has one) and
  the rubric, and answers JSON {score, reason} (response_format json_schema). The record's score
  is the mean of the judge's samples, as a fraction: pass_fail 0/1; 1-5 mapped to (s - 1) / 4.
- `preference`: each variant output against the baseline's output on the same example (same
  repeat), asked twice with the order swapped; each order is a vote (win 1, tie 0.5, loss 0) and
  the example's score is their mean, so a split decision is a tie (0.5) and a judge that always
  picks the first answer shown scores exactly 0.5. The metric is the win rate (ties half). The
  baseline scores 0.5 against itself, so the summary's paired delta (variant - baseline) IS
  win rate - 0.5, with a paired bootstrap CI over examples: a guard `metric: preference,
  test: superiority, margin: 0.1` means "preferred over the baseline on >= 60%".
- A variant error (no output) scores 0 (errors count as wrong): in `preference` it loses to the
  baseline's answer and a baseline error loses to the variant's; the same answer as the baseline
  is a tie without a judge call. A *judge* error (no valid answer after retries) scores nothing:
  the record is left out of the metric, never counted as a pass, and the errors are counted in
  summary["judge"]["errors"] (and per variant as "unscored").
- Agreement: with `repeats` >= 2 (sample 0 vs sample 1) or `second_model` (primary sample 0 vs the
  second model's), Cohen's kappa (scikit-learn; quadratic weights on the 1-5 scale).
- Position bias (preference): share of pairs where the judge picked the same position in both
  orders; high means the judge follows the order shown, and the swap made those ties.
- Style consistency (variant `repeats` >= 2): share of examples whose samples the judge rates
  within one point of each other (pass_fail: the same verdict).

Judgements are appended to results/<variant>.judge.jsonl as they finish, keyed by a hash of what
was judged, so a resumed run never re-judges (failed judgements are asked again); the response
cache covers it too. Judge cost is
reported in summary["judge"], apart from the variants' cost.

Light at import (numpy only): importing harness.score registers these metrics.
"""

from harness.score.judge.config import JudgeConfig, check_args, configs
from harness.score.judge.merge import SECTION_METRICS, judge_section, merge_scores
from harness.score.judge.metrics import agreement, kappa, position_bias
from harness.score.judge.prompts import normalized, parse_score, parse_winner, vote
from harness.score.judge.stage import build_tasks, check_judge_credentials, judge_records

__all__ = [
    "SECTION_METRICS",
    "JudgeConfig",
    "agreement",
    "build_tasks",
    "check_args",
    "check_judge_credentials",
    "configs",
    "judge_records",
    "judge_section",
    "kappa",
    "merge_scores",
    "normalized",
    "parse_score",
    "parse_winner",
    "position_bias",
    "vote",
]
