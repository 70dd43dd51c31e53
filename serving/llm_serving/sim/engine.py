"""The capacity model of the engine simulator: a batch of bounded size, a FIFO queue, token rates.

A GPU running vLLM decodes at most `max_num_seqs` sequences at once; the rest
wait, first come first served, which is the queue depth the autoscaler reads as
`vllm:num_requests_waiting`. The model here is deliberately simple and stated:

- Admission: the head of the waiting queue starts running when fewer than
  `max_num_seqs` sequences run and its prompt fits in the free KV cache (a lone
  sequence is always admitted). Strict FIFO: a large head blocks the ones behind.
- Prefill: `prompt_tokens / prefill_tokens_per_s` seconds; it yields the first
  output token, as in vLLM.
- Decode: each further token takes `(1 + decode_slowdown * (running - 1)) /
  decode_tokens_per_s` seconds, evaluated per token with the batch size at that
  moment: a bigger batch makes every sequence slower but the engine faster.
- KV cache: every running sequence holds its prompt plus the tokens generated so
  far; `vllm:kv_cache_usage_perc` is the sum over the capacity
  (`kv_cache_tokens`, by default `max_num_seqs * max_model_len`). No preemption.
- Faults: with probability `fail_rate` a request is doomed at submission to fail
  after a random number of its tokens (`EngineFaultError`); the HTTP layer turns that
  into a 500 or a dropped stream.
- Start-up: the engine is not ready until `startup_delay_s` after `start()`.

A request that leaves early (client gone) is removed from the queue or the batch
by `finish()`, which the caller runs in `finally`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import uuid

from llm_serving.sim import metrics as sim_metrics

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Everything the simulator can be told; `llm-serving sim --help` documents each."""

    model: str = "sim-model"
    max_num_seqs: int = 8
    prefill_tokens_per_s: float = 8000.0
    decode_tokens_per_s: float = 40.0
    decode_slowdown: float = 0.05
    max_model_len: int = 4096
    kv_cache_tokens: int | None = None
    output_tokens: int = 64
    startup_delay_s: float = 0.0
    fail_rate: float = 0.0
    seed: int = 0
    embedding_dim: int = 384
    root: str | None = None

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be at least 1")
        if self.prefill_tokens_per_s <= 0 or self.decode_tokens_per_s <= 0:
            raise ValueError("token rates must be positive")
        if self.decode_slowdown < 0:
            raise ValueError("decode_slowdown must not be negative")
        if self.max_model_len < 2:
            raise ValueError("max_model_len must be at least 2")
        if self.kv_cache_tokens is not None and self.kv_cache_tokens < 1:
            raise ValueError("kv_cache_tokens must be positive")
        if self.output_tokens < 1:
            raise ValueError("output_tokens must be at least 1")
        if self.startup_delay_s < 0:
            raise ValueError("startup_delay_s must not be negative")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.embedding_dim < 1:
            raise ValueError("embedding_dim must be positive")

    @property
    def kv_capacity(self) -> int:
        """KV cache capacity in tokens."""
        return self.kv_cache_tokens or self.max_num_seqs * self.max_model_len


def token_interval(config: SimConfig, batch: int) -> float:
    """Seconds per output token of each sequence while `batch` sequences run (after the first)."""
    return (1.0 + config.decode_slowdown * (max(1, batch) - 1)) / config.decode_tokens_per_s


def service_seconds(config: SimConfig, prompt_tokens: int, output_tokens: int, batch: int) -> float:
    """Time in the batch of one sequence: prefill, then each further token at the batch's pace.

    The capacity model in one formula, for load models that do not run the engine
    (`bench/autoscale.py` sizes its simulated replicas with it).
    """
    prefill = prompt_tokens / config.prefill_tokens_per_s
    return prefill + max(0, output_tokens - 1) * token_interval(config, batch)


class EngineFaultError(Exception):
    """An injected engine failure (fault injection through `fail_rate`)."""


@dataclasses.dataclass(eq=False)
class Sequence:
    """One request inside the engine, from submission to finish."""

    request_id: str
    prompt_tokens: int
    max_tokens: int
    n: int
    arrival: float
    admitted: asyncio.Future[None]
    fail_after: int | None = None
    admitted_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    prefilled: bool = False
    generated: int = 0
    finished: bool = False


class Engine:
    """The simulated scheduler and its metrics; one per served model."""

    def __init__(self, config: SimConfig, metrics: sim_metrics.SimMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: set[Sequence] = set()
        self._kv_used = 0
        self._rng = random.Random(config.seed)  # noqa: S311 - not security relevant
        self._started_at: float | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Begin the start-up delay (call from the running event loop)."""
        self._started_at = asyncio.get_running_loop().time()
        logger.info(
            "engine simulator for %s starting, ready in %.1f s",
            self.config.model,
            self.config.startup_delay_s,
        )

    @property
    def ready(self) -> bool:
        """True once the start-up delay has passed."""
        if self._started_at is None:
            return False
        elapsed = asyncio.get_running_loop().time() - self._started_at
        return elapsed >= self.config.startup_delay_s

    # -- state, for tests and /metrics -------------------------------------

    @property
    def num_waiting(self) -> int:
        """Sequences in the FIFO queue."""
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        """Sequences in the batch."""
        return len(self._running)

    @property
    def kv_used(self) -> int:
        """KV cache tokens held by the batch."""
        return self._kv_used

    def random_seed(self) -> int:
        """A seed for a request that brings none and samples (temperature > 0)."""
        return self._rng.getrandbits(64)

    # -- the request path ----------------------------------------------------

    def submit(self, prompt_tokens: int, max_tokens: int, n: int = 1) -> Sequence:
        """Enqueue a sequence; it runs when admitted (see `wait_admitted`)."""
        loop = asyncio.get_running_loop()
        fail_after = None
        if self.config.fail_rate > 0 and self._rng.random() < self.config.fail_rate:
            fail_after = self._rng.randint(0, max(0, max_tokens - 1))
        seq = Sequence(
            request_id=uuid.uuid4().hex,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            n=n,
            arrival=loop.time(),
            admitted=loop.create_future(),
            fail_after=fail_after,
        )
        self._waiting.append(seq)
        self._schedule()
        return seq

    async def wait_admitted(self, seq: Sequence) -> None:
        """Wait until the sequence is in the batch."""
        await asyncio.shield(seq.admitted)

    async def prefill(self, seq: Sequence) -> None:
        """Process the prompt (no output token: for embeddings)."""
        await self.wait_admitted(seq)
        await asyncio.sleep(seq.prompt_tokens / self.config.prefill_tokens_per_s)
        seq.prefilled = True
        self.metrics.prompt_tokens.inc(seq.prompt_tokens)

    async def next_token(self, seq: Sequence) -> None:
        """Produce one output token: the first after prefill, then at the decode rate.

        Raises `EngineFaultError` when fault injection picked this sequence and point.
        """
        if seq.fail_after is not None and seq.generated >= seq.fail_after:
            raise EngineFaultError(f"injected engine fault after {seq.generated} tokens")
        loop = asyncio.get_running_loop()
        if not seq.prefilled:
            await self.prefill(seq)
        else:
            await asyncio.sleep(token_interval(self.config, len(self._running)))
        now = loop.time()
        if seq.generated == 0:
            seq.first_token_at = now
            self.metrics.time_to_first_token.observe(now - seq.arrival)
        elif seq.last_token_at is not None:
            self.metrics.inter_token_latency.observe(now - seq.last_token_at)
        seq.last_token_at = now
        seq.generated += 1
        self._kv_used += 1
        self.metrics.generation_tokens.inc()
        self.metrics.kv_cache_usage_perc.set(self._kv_usage())

    def finish(self, seq: Sequence, reason: str) -> None:
        """Take the sequence out of the queue or batch and record it; idempotent."""
        if seq.finished:
            return
        seq.finished = True
        if not seq.admitted.done():
            seq.admitted.cancel()
        if seq in self._running:
            self._running.discard(seq)
            self._kv_used -= seq.prompt_tokens + seq.generated
        else:
            with contextlib.suppress(ValueError):
                self._waiting.remove(seq)
        self._record(seq, reason)
        self._schedule()

    # -- internals -----------------------------------------------------------

    def _kv_usage(self) -> float:
        return min(1.0, self._kv_used / self.config.kv_capacity)

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        capacity = self.config.kv_capacity
        while self._waiting and len(self._running) < self.config.max_num_seqs:
            head = self._waiting[0]
            if self._running and self._kv_used + head.prompt_tokens > capacity:
                break
            self._waiting.popleft()
            head.admitted_at = loop.time()
            self._running.add(head)
            self._kv_used += head.prompt_tokens
            if not head.admitted.done():
                head.admitted.set_result(None)
        self.metrics.num_requests_waiting.set(len(self._waiting))
        self.metrics.num_requests_running.set(len(self._running))
        self.metrics.kv_cache_usage_perc.set(self._kv_usage())

    def _record(self, seq: Sequence, reason: str) -> None:
        m = self.metrics
        now = asyncio.get_running_loop().time()
        m.request_success[reason].inc()
        m.e2e_request_latency.observe(now - seq.arrival)
        m.request_prompt_tokens.observe(seq.prompt_tokens)
        m.request_generation_tokens.observe(seq.generated)
        m.request_max_num_generation_tokens.observe(seq.max_tokens)
        m.request_params_max_tokens.observe(seq.max_tokens)
        m.request_params_n.observe(seq.n)
        m.request_num_preemptions.observe(0)
        if seq.admitted_at is None:
            return
        m.request_queue_time.observe(seq.admitted_at - seq.arrival)
        m.request_inference_time.observe(now - seq.admitted_at)
        if seq.first_token_at is not None:
            m.request_prefill_time.observe(seq.first_token_at - seq.admitted_at)
            m.request_decode_time.observe(now - seq.first_token_at)
            if seq.generated > 1:
                m.request_time_per_output_token.observe(
                    (now - seq.first_token_at) / (seq.generated - 1)
                )
