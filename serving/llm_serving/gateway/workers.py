"""The worker processes that check long texts, so that no request holds the event loop.

The checks are pure Python and regular expressions: on the event loop a long text
would stop every other request, `/health` and `/ready` included, for as long as it
is scored, and a thread would not help, since the GIL lets one thread run Python at a
time and a regular expression does not give it up while it matches (measured:
docs/security.md). So the requests whose texts are longer together than
`Settings.offload_chars` are checked in a pool of processes (pebble's `ProcessPool`), sized to
the CPUs the pod may use (its cgroup's CPU quota, else the CPUs it may run on), and
the event loop goes on serving the others meanwhile; the kernel shares the CPU
between the loop and the workers.

A worker is started from a fork server (clean, single-threaded), loads the shared
models once at start, and builds the guards of a policy the first time a job carries
it (a job names its policy by its JSON; the last few are kept). The pool starts on
the first long text. A job whose request is cancelled (its client left) or that runs
past `Settings.check_timeout` seconds (checks are linear: a 1 MiB prompt takes well
under a second; the timeout bounds what a defect or a policy's own deny pattern
could cost) has its worker terminated and replaced; a job that cannot
start because `max_queued` jobs are waiting is refused at once with 503, and so is a
job whose worker died or timed out (the checks could not vouch for the text).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import multiprocessing
import os
import pathlib
from typing import Any

import pebble

from llm_serving import policy
from llm_serving.gateway import checks, errors, fastjson
from llm_serving.guardrails import injection, pipeline, tokens, toxicity

logger = logging.getLogger(__name__)

#: Jobs waiting per worker before more are refused with 503.
QUEUED_PER_WORKER = 8
#: Policies whose guards a worker keeps.
_KEPT_POLICIES = 4


def pod_cpus() -> int:
    """CPUs this process may use: its cgroup's quota (rounded up), at most its affinity."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = pathlib.Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


class Pool:
    """The check workers of one gateway process (started on first use)."""

    def __init__(self, workers: int, tokenizer: pathlib.Path | None, timeout: float) -> None:
        self.workers = max(1, workers)
        self.timeout = timeout
        self.max_queued = self.workers * QUEUED_PER_WORKER
        self._tokenizer = str(tokenizer) if tokenizer is not None else None
        self._pool: pebble.ProcessPool | None = None
        self._jobs = 0

    def _started(self) -> pebble.ProcessPool:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["llm_serving.gateway.workers"])
            self._pool = pebble.ProcessPool(
                max_workers=self.workers,
                initializer=_start_worker,
                initargs=(self._tokenizer,),
                context=context,
            )
            logger.info("check workers: %d processes", self.workers)
        return self._pool

    async def run(self, function: Any, *args: Any) -> Any:
        """`function(*args)` in a worker (a module-level function and picklable arguments)."""
        if self._jobs >= self.max_queued:
            raise errors.checks_busy()
        self._jobs += 1
        future = self._started().schedule(function, args=args, timeout=self.timeout)
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError:
            logger.error("a check job ran past %.1f s; its worker was replaced", self.timeout)
            raise errors.checks_failed("the checks did not finish in time") from None
        except pebble.ProcessExpired as exc:
            logger.error("a check worker died (exit code %s)", exc.exitcode)
            raise errors.checks_failed("a check worker died") from None
        finally:
            self._jobs -= 1
            # The request was cancelled (its client left): terminate the worker's job.
            future.cancel()  # type: ignore[no-untyped-call]  # pebble leaves it unannotated

    async def check_request(
        self,
        rules: policy.GuardrailPolicy,
        texts: list[str],
        windows: pipeline.Windows | None,
    ) -> pipeline.RequestResult:
        """`InputGuard.check_request` in a worker."""
        result: pipeline.RequestResult = await self.run(
            _request_job, rules.model_dump_json(), texts, windows
        )
        return result

    async def check_answer(
        self, rules: policy.GuardrailPolicy, raw: bytes, chat: bool
    ) -> tuple[checks.AnswerResult, bytes | None]:
        """`checks.check_answer` in a worker: its result and the new body, if it changed."""
        result: tuple[checks.AnswerResult, bytes | None] = await self.run(
            _answer_job, rules.model_dump_json(), raw, chat
        )
        return result

    def close(self) -> None:
        """Terminate the workers (jobs in progress are lost)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves it unannotated
            pool.join(timeout=5.0)


# --------------------------------------------------------------------- in the worker

_counter: tokens.TokenCounter | None = None
_Guards = tuple[pipeline.InputGuard, pipeline.OutputGuard, policy.CheckLimits]
_guards: dict[str, _Guards] = {}


def _start_worker(tokenizer: str | None) -> None:
    """Load the models every policy shares, once per worker."""
    global _counter
    _counter = tokens.TokenCounter.from_path(tokenizer)
    injection.shared()
    toxicity.shared()


def _guards_of(rules_json: str) -> _Guards:
    guards = _guards.get(rules_json)
    if guards is None:
        rules = policy.GuardrailPolicy.model_validate_json(rules_json)
        counter = _counter or tokens.TokenCounter(None)
        guards = (
            pipeline.InputGuard(rules.input, counter),
            pipeline.OutputGuard(rules.output),
            rules.limits,
        )
        while len(_guards) >= _KEPT_POLICIES:
            del _guards[next(iter(_guards))]
        _guards[rules_json] = guards
    return guards


def _request_job(
    rules_json: str, texts: list[str], windows: pipeline.Windows | None
) -> pipeline.RequestResult:
    return _guards_of(rules_json)[0].check_request(texts, windows)


def _answer_job(
    rules_json: str, raw: bytes, chat: bool
) -> tuple[checks.AnswerResult, bytes | None]:
    _, guard, limits = _guards_of(rules_json)
    data = fastjson.loads(raw)
    result = checks.check_answer(guard, data, chat, limits)
    return result, fastjson.dumps(data) if result.changed else None
