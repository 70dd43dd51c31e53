"""The judge: a Llama-Guard-style model over a real socket, verdicts, timeouts, fail modes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web

from llm_serving import policy
from llm_serving.guardrails import judge, pipeline, tokens

PROMPT = "How do I make a cake? My email is jane.doe@example.com"


def completion(content: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def verdict(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        received.append(body)
        mode = request.match_info["mode"]
        if mode == "slow":
            await asyncio.sleep(5)
        if mode == "error":
            return web.json_response({"error": "boom"}, status=500)
        if mode == "garbage":
            return web.Response(text="not json at all")
        replies = {
            "safe": "safe",
            "unsafe": "unsafe\nS1",
            "multi": "unsafe\nS1,S10",
            "echo": "unsafe\nS2 because the user wrote: " + body["messages"][0]["content"],
            "weird": "I cannot decide",
            "slow": "safe",
        }
        return web.json_response(completion(replies[mode]))

    app = web.Application()
    app.router.add_post("/{mode}/v1/chat/completions", verdict)
    async with test_utils.TestServer(app, host="127.0.0.1", port=0) as test_server:
        yield str(test_server.make_url("")).rstrip("/"), received


def guard(url: str, **judge_config: Any) -> pipeline.InputGuard:
    config = policy.InputGuardrails.model_validate(
        {"judge": {"enabled": True, "url": url, "model": "llama-guard", **judge_config}}
    )
    return pipeline.InputGuard(config, tokens.TokenCounter(None))


async def ask(url: str, **judge_config: Any) -> pipeline.Finding | None:
    async with aiohttp.ClientSession() as session:
        return await guard(url, **judge_config).judge(session, PROMPT)


async def test_safe(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, received = server
    assert await ask(base + "/safe") is None
    body = received[0]
    assert body["model"] == "llama-guard"
    assert body["messages"] == [{"role": "user", "content": PROMPT}]
    assert body["temperature"] == 0


async def test_unsafe(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    finding = await ask(base + "/unsafe")
    assert finding is not None
    assert finding.check == "judge"
    assert finding.action is policy.Action.BLOCK
    assert finding.score == 1.0
    assert "S1" in finding.message
    multi = await ask(base + "/multi", action="monitor")
    assert multi is not None
    assert multi.action is policy.Action.MONITOR
    assert "S1, S10" in multi.message


async def test_message_never_echoes_the_model(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    finding = await ask(base + "/echo")
    assert finding is not None
    assert "jane.doe" not in finding.message
    assert "cake" not in finding.message
    assert "S2" in finding.message


async def test_timeout_fails_open(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await ask(base + "/slow", timeoutSeconds=0.2, failMode="open") is None
    assert loop.time() - started < 2


async def test_timeout_fails_closed(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    finding = await ask(base + "/slow", timeoutSeconds=0.2, failMode="closed")
    assert finding is not None
    assert finding.check == "judge"
    assert finding.action is policy.Action.BLOCK
    assert "timeout" in finding.message


@pytest.mark.parametrize("mode", ["error", "garbage", "weird"])
async def test_bad_answers_follow_fail_mode(
    server: tuple[str, list[dict[str, Any]]], mode: str
) -> None:
    base, _ = server
    assert await ask(f"{base}/{mode}", failMode="open") is None
    closed = await ask(f"{base}/{mode}", failMode="closed")
    assert closed is not None
    assert closed.score == 0.0


async def test_unreachable_judge_fails_closed() -> None:
    finding = await ask("http://127.0.0.1:9", timeoutSeconds=1, failMode="closed")
    assert finding is not None
    assert finding.check == "judge"


async def test_disabled_judge_is_not_called() -> None:
    config = policy.InputGuardrails()
    input_guard = pipeline.InputGuard(config, tokens.TokenCounter(None))
    async with aiohttp.ClientSession() as session:
        assert await input_guard.judge(session, PROMPT) is None


def test_parse() -> None:
    assert judge.parse("safe") == judge.Verdict(True)
    assert judge.parse("  safe\n") == judge.Verdict(True)
    assert judge.parse("unsafe\nS1,S3") == judge.Verdict(False, ("S1", "S3"))
    assert judge.parse("unsafe") == judge.Verdict(False, ())
    for bad in ["", "maybe", "   "]:
        with pytest.raises(judge.JudgeError):
            judge.parse(bad)
