"""Benchmark: how long the event loop stalls while a long prompt is checked, three ways.

The gateway's checks are pure Python and regular expressions. This measures what
each way of running them costs the other requests of the process: a probe task
sleeps 1 ms in a loop on the event loop and records how late each wake-up is (the
event-loop lag a `/health` or a short request would see), while the input checks
of one long prompt run

- on the event loop itself (what the gateway does for short texts);
- in a thread (`asyncio.to_thread`): the GIL lets one thread run Python at a time,
  and a regular expression does not give it up while it matches;
- in a worker process (`workers.Pool`, what the gateway does past `offload_chars`).

It prints a markdown table: the time the check took and the loop's lag (p50, p99,
max) during it, per way and prompt. Prompts: English prose and Japanese text
without spaces, 256 Ki and 1 Mi characters.

    .venv/bin/python bench/offload.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from llm_serving import policy
from llm_serving.gateway import workers
from llm_serving.guardrails import pipeline, tokens

PROSE = "The committee met on Tuesday to review the budget for the coming year. "
JAPANESE = "会議は火曜日に開かれ来年度の予算を検討しました"


def _text(unit: str, chars: int) -> str:
    return (unit * (chars // len(unit) + 1))[:chars]


async def _lag_during(work: Callable[[], Awaitable[object]]) -> tuple[float, list[float]]:
    """Seconds `work` took, and the event loop's lag (s) at each 1 ms wake-up meanwhile."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            wanted = loop.time() + 0.001
            await asyncio.sleep(0.001)
            lags.append(max(0.0, loop.time() - wanted))

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done.set()
    await task
    return took, lags or [0.0]


async def main() -> None:
    rules = policy.GuardrailPolicy(enabled=True)
    guard = pipeline.InputGuard(rules.input, tokens.TokenCounter(None))
    pool = workers.Pool(1, None, timeout=600.0)
    await pool.check_request(rules, ["warm up"], None)  # start the worker
    guard.check_request(["warm up"])
    ways: dict[str, Callable[[list[str]], Awaitable[object]]] = {
        "event loop": lambda texts: _now(guard.check_request, texts),
        "thread": lambda texts: asyncio.to_thread(guard.check_request, texts),
        "worker process": lambda texts: pool.check_request(rules, texts, None),
    }
    print("| prompt | way | check s | loop lag p50 ms | p99 ms | max ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    try:
        for name, unit in (("prose", PROSE), ("Japanese", JAPANESE)):
            for chars in (256 * 1024, 1024 * 1024):
                for way, run in ways.items():
                    fresh = f"{time.monotonic_ns()} "  # a new text each time: nothing memoised
                    texts = [fresh + _text(unit, chars - len(fresh))]
                    took, lags = await _lag_during(lambda: run(texts))  # noqa: B023
                    quantiles = (
                        statistics.quantiles(lags, n=100, method="inclusive")
                        if len(lags) > 1
                        else lags * 99
                    )
                    print(
                        f"| {name}, {chars // 1024} Ki chars | {way} | {took:.2f} | "
                        f"{statistics.median(lags) * 1000:.1f} | {quantiles[98] * 1000:.1f} | "
                        f"{max(lags) * 1000:.0f} |"
                    )
    finally:
        pool.close()


async def _now(function: Callable[[list[str]], object], texts: list[str]) -> object:
    return function(texts)


if __name__ == "__main__":
    asyncio.run(main())
