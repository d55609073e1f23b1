"""The floor of any client: a bare aiohttp loop, one process, no litellm.

    python benchmarks/bare_aiohttp.py URL N CONCURRENCY

The same server, prompts and concurrency as benchmarks/throughput.py and bare_litellm.py:
CONCURRENCY runners share one iterator, each POSTs an OpenAI chat body (json.dumps) on one
session and parses the reply (json.loads). Prints one JSON line: the import's CPU, the calls'
CPU and wall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("n", type=int)
    p.add_argument("concurrency", type=int)
    args = p.parse_args()
    c0 = time.process_time()
    import aiohttp

    import_cpu = time.process_time() - c0
    headers = {"Authorization": "Bearer sk-bench-not-a-key", "Content-Type": "application/json"}

    async def run() -> None:
        todo = iter(range(args.n))
        async with aiohttp.ClientSession() as session:

            async def runner() -> None:
                for i in todo:
                    body = json.dumps(
                        {
                            "model": "gpt-4o-mini",
                            "messages": [
                                {"role": "user", "content": f"Question: bench question number {i}"}
                            ],
                            "temperature": 0,
                            "max_tokens": 16,
                        }
                    )
                    async with session.post(
                        args.url + "/chat/completions", data=body, headers=headers
                    ) as r:
                        reply = json.loads(await r.read())
                    assert reply["choices"][0]["message"]["content"] is not None

            await asyncio.gather(*(runner() for _ in range(args.concurrency)))

    c1, w1 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    out = {
        "import_cpu_s": import_cpu,
        "calls_cpu_s": time.process_time() - c1,
        "calls_wall_s": time.perf_counter() - w1,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
