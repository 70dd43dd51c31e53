"""Unit tests of the engine simulator's capacity model, token estimate and pseudo-words."""

from __future__ import annotations

import asyncio

import pytest

from llm_serving.sim import engine as sim_engine
from llm_serving.sim import metrics as sim_metrics
from llm_serving.sim import text as sim_text


def make_engine(**overrides: object) -> sim_engine.Engine:
    config = sim_engine.SimConfig(**overrides)  # type: ignore[arg-type]
    engine = sim_engine.Engine(config, sim_metrics.SimMetrics(config.model, config.max_model_len))
    engine.start()
    return engine


def sample(engine: sim_engine.Engine, name: str, **labels: str) -> float:
    value = engine.metrics.registry.get_sample_value(
        name, {"model_name": engine.config.model, "engine": "0", **labels}
    )
    assert value is not None, name
    return value


async def test_queue_builds_beyond_max_num_seqs_and_drains_fifo() -> None:
    engine = make_engine(max_num_seqs=2)
    seqs = [engine.submit(prompt_tokens=10, max_tokens=5) for _ in range(5)]
    assert engine.num_running == 2
    assert engine.num_waiting == 3
    assert sample(engine, "vllm:num_requests_waiting") == 3
    assert sample(engine, "vllm:num_requests_running") == 2
    assert [s.admitted.done() for s in seqs] == [True, True, False, False, False]

    engine.finish(seqs[0], "stop")
    # First come, first served: the head of the queue is admitted next.
    assert [s.admitted.done() for s in seqs[2:]] == [True, False, False]
    assert engine.num_waiting == 2
    for seq in seqs[1:]:
        engine.finish(seq, "stop")
    assert (engine.num_running, engine.num_waiting, engine.kv_used) == (0, 0, 0)
    assert sample(engine, "vllm:request_success_total", finished_reason="stop") == 5


async def test_kv_cache_admission_and_usage() -> None:
    engine = make_engine(max_num_seqs=4, kv_cache_tokens=100)
    first = engine.submit(prompt_tokens=60, max_tokens=5)
    second = engine.submit(prompt_tokens=50, max_tokens=5)  # does not fit beside the first
    third = engine.submit(prompt_tokens=10, max_tokens=5)  # fits, but FIFO: waits behind
    assert first.admitted.done()
    assert not second.admitted.done()
    assert not third.admitted.done()
    assert sample(engine, "vllm:kv_cache_usage_perc") == pytest.approx(0.6)
    engine.finish(first, "stop")
    assert second.admitted.done()
    assert third.admitted.done()
    assert sample(engine, "vllm:kv_cache_usage_perc") == pytest.approx(0.6)


async def test_lone_sequence_larger_than_cache_still_runs() -> None:
    engine = make_engine(kv_cache_tokens=10)
    seq = engine.submit(prompt_tokens=50, max_tokens=5)
    assert seq.admitted.done()
    assert sample(engine, "vllm:kv_cache_usage_perc") == 1.0


async def test_finish_removes_waiting_sequence() -> None:
    engine = make_engine(max_num_seqs=1)
    running = engine.submit(prompt_tokens=1, max_tokens=1)
    waiting = engine.submit(prompt_tokens=1, max_tokens=1)
    engine.finish(waiting, "abort")
    assert engine.num_waiting == 0
    assert waiting.admitted.cancelled()
    engine.finish(waiting, "abort")  # idempotent
    assert sample(engine, "vllm:request_success_total", finished_reason="abort") == 1
    engine.finish(running, "stop")
    assert engine.num_running == 0


async def test_cancelled_waiter_leaves_the_queue() -> None:
    engine = make_engine(max_num_seqs=1)
    blocker = engine.submit(prompt_tokens=1, max_tokens=1)
    queued = engine.submit(prompt_tokens=1, max_tokens=1)

    async def client() -> None:
        try:
            await engine.wait_admitted(queued)
        finally:
            engine.finish(queued, "abort")

    task = asyncio.create_task(client())
    await asyncio.sleep(0)
    assert engine.num_waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.num_waiting == 0
    engine.finish(blocker, "stop")


async def test_tokens_counted_and_kv_released() -> None:
    engine = make_engine(prefill_tokens_per_s=1e6, decode_tokens_per_s=1e6)
    seq = engine.submit(prompt_tokens=7, max_tokens=3)
    for _ in range(3):
        await engine.next_token(seq)
    assert seq.generated == 3
    assert engine.kv_used == 10
    engine.finish(seq, "length")
    assert engine.kv_used == 0
    assert sample(engine, "vllm:prompt_tokens_total") == 7
    assert sample(engine, "vllm:generation_tokens_total") == 3
    assert sample(engine, "vllm:time_to_first_token_seconds_count") == 1
    assert sample(engine, "vllm:inter_token_latency_seconds_count") == 2
    assert sample(engine, "vllm:e2e_request_latency_seconds_count") == 1
    assert sample(engine, "vllm:request_generation_tokens_sum") == 3


async def test_fault_injection_raises() -> None:
    engine = make_engine(fail_rate=1.0, prefill_tokens_per_s=1e6, decode_tokens_per_s=1e6)
    seq = engine.submit(prompt_tokens=1, max_tokens=4)
    assert seq.fail_after is not None
    for _ in range(seq.fail_after):
        await engine.next_token(seq)
    with pytest.raises(sim_engine.EngineFaultError):
        await engine.next_token(seq)
    assert seq.generated == seq.fail_after
    engine.finish(seq, "error")


async def test_startup_delay() -> None:
    assert make_engine(startup_delay_s=0).ready
    assert not make_engine(startup_delay_s=3600).ready


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_num_seqs": 0},
        {"decode_tokens_per_s": 0},
        {"fail_rate": 1.5},
        {"startup_delay_s": -1},
        {"max_model_len": 1},
    ],
)
def test_config_rejects_nonsense(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        sim_engine.SimConfig(**overrides)  # type: ignore[arg-type]


def test_token_estimate() -> None:
    assert sim_text.estimate_tokens("") == 0
    assert sim_text.estimate_tokens("abcd") == 1
    assert sim_text.estimate_tokens("abcde") == 2
    messages = [{"role": "user", "content": "abcdefgh"}]
    # 3 priming + 4 framing + 1 ("user") + 2 (content)
    assert sim_text.chat_prompt_tokens(messages) == 10
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]
    assert sim_text.chat_prompt_tokens(parts) == 10


def test_pseudo_words_are_deterministic() -> None:
    seed = sim_text.request_seed(0, "Hello", None)
    assert sim_text.pseudo_words(seed, 8) == sim_text.pseudo_words(seed, 8)
    assert sim_text.pseudo_words(seed, 8) != sim_text.pseudo_words(seed + 1, 8)
    assert sim_text.request_seed(0, "Hello", 1) != sim_text.request_seed(0, "Hello", 2)
    assert all(word.isalpha() for word in sim_text.pseudo_words(seed, 50))


def test_pseudo_word_completions_pass_the_gateway_toxicity_check() -> None:
    """The simulator sits behind the gateway in demos and benchmarks: its gibberish must
    not read as slang to the output toxicity classifier (default threshold 0.8)."""
    from llm_serving.guardrails import toxicity

    classifier = toxicity.shared()
    scores = [
        classifier.score(
            " ".join(sim_text.pseudo_words(sim_text.request_seed(0, str(i), None), 16))
        )
        for i in range(2000)
    ]
    assert max(scores) < 0.5


def test_embeddings_are_unit_vectors_and_similar_for_shared_words() -> None:
    a = sim_text.embed("the cat sat on the mat", 64)
    b = sim_text.embed("the cat sat on a mat", 64)
    c = sim_text.embed("quantum chromodynamics lecture", 64)
    assert sum(x * x for x in a) == pytest.approx(1.0)

    def cos(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cos(a, b) > cos(a, c)
    assert a == sim_text.embed("the cat sat on the mat", 64)


def test_token_buckets_follow_vllm() -> None:
    assert sim_metrics.one_two_five_buckets(512) == (
        1.0,
        2.0,
        5.0,
        10.0,
        20.0,
        50.0,
        100.0,
        200.0,
        500.0,
    )
