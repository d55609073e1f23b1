"""The floor harness is compared with: a bare `litellm.acompletion` loop, one process.

    python benchmarks/bare_litellm.py URL N CONCURRENCY     # prints one JSON line

Same server, prompts and concurrency as benchmarks/throughput.py; litellm configured as harness
configures it (harness.calls._litellm). Prints the import's CPU and the calls' CPU and wall.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> None:
    url, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    c0 = time.process_time()
    import litellm

    litellm.suppress_debug_info = True
    litellm.num_retries = 0
    import_cpu = time.process_time() - c0

    async def run() -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Question: bench question number {i}"}],
                    api_base=url,
                    api_key="sk-bench-not-a-key",
                    temperature=0,
                    max_tokens=16,
                    num_retries=0,
                    max_retries=0,
                    timeout=60,
                )

        await asyncio.gather(*(one(i) for i in range(n)))

    c1, w1 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    calls_cpu, calls_wall = time.process_time() - c1, time.perf_counter() - w1
    print(
        json.dumps(
            {"import_cpu_s": import_cpu, "calls_cpu_s": calls_cpu, "calls_wall_s": calls_wall}
        )
    )


if __name__ == "__main__":
    main()
