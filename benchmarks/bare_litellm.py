"""The floor harness is compared with: a bare `litellm.acompletion` loop, one process.

    python benchmarks/bare_litellm.py URL N CONCURRENCY [--config harness|defaults]

Same server, prompts and concurrency as benchmarks/throughput.py and scale.py. `--config
harness` (the default) configures litellm with harness's own `import_litellm`, so the two can
never drift; `--config defaults` leaves litellm as it imports (issue 20's "litellm's own"). A
difference between the two is a litellm switch's, not harness's. CONCURRENCY runners share one
iterator (as harness's engine does), so N never means N tasks at once. Prints one JSON line: the
import's CPU, the calls' CPU and wall, and Python function calls per call with `--count-calls`
(cProfile: a figure the machine's load does not move, unlike CPU seconds; it slows the calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("n", type=int)
    p.add_argument("concurrency", type=int)
    p.add_argument("--config", choices=("harness", "defaults"), default="harness")
    p.add_argument("--count-calls", action="store_true")
    args = p.parse_args()
    c0 = time.process_time()
    if args.config == "harness":
        from harness.calls._litellm import import_litellm

        litellm = import_litellm()
    else:
        import litellm
    import_cpu = time.process_time() - c0

    async def run() -> None:
        todo = iter(range(args.n))

        async def runner() -> None:
            for i in todo:
                await litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Question: bench question number {i}"}],
                    api_base=args.url,
                    api_key="sk-bench-not-a-key",
                    temperature=0,
                    max_tokens=16,
                    num_retries=0,
                    max_retries=0,
                    timeout=60,
                )

        await asyncio.gather(*(runner() for _ in range(args.concurrency)))

    profile = None
    if args.count_calls:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    c1, w1 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    calls_cpu, calls_wall = time.process_time() - c1, time.perf_counter() - w1
    out = {"import_cpu_s": import_cpu, "calls_cpu_s": calls_cpu, "calls_wall_s": calls_wall}
    if profile is not None:
        import pstats

        profile.disable()
        out["python_calls_per_call"] = pstats.Stats(profile).total_calls / args.n
    out["config"] = args.config
    print(json.dumps(out))


if __name__ == "__main__":
    main()
