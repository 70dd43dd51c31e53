"""The optional judge: a Llama-Guard-style guard model asked over HTTP about each prompt.

The judge is any OpenAI-compatible server (typically vLLM serving Llama Guard as
another LLMDeployment). The prompt is sent as the user turn to
``{url}/v1/chat/completions``; the model's chat template turns it into the guard
prompt, and the reply's first line is ``safe`` or ``unsafe`` with the violated
categories (``S1,S10``) on the next line. Only category codes of that shape are ever
copied into messages; the model's free text is not, since it may quote the prompt.
Network errors, HTTP errors, timeouts and unparseable replies all count as a failure,
which the caller turns into fail-open or fail-closed per policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import aiohttp

from llm_serving import policy

_CATEGORY = re.compile(r"\bS\d{1,2}\b")
MAX_VERDICT_TOKENS = 16


class JudgeError(Exception):
    """The judge gave no usable verdict; `reason` is safe to log and return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The judge's answer."""

    safe: bool
    categories: tuple[str, ...] = ()


def parse(content: str) -> Verdict:
    """Parse a Llama Guard reply (``safe`` or ``unsafe\\nS1,S2``); raise JudgeError otherwise."""
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    if not lines:
        raise JudgeError("empty verdict")
    head = lines[0].lower()
    if head == "safe":
        return Verdict(True)
    if head.startswith("unsafe"):
        rest = " ".join([lines[0][6:], *lines[1:2]])
        return Verdict(False, tuple(dict.fromkeys(_CATEGORY.findall(rest))))
    raise JudgeError("unrecognised verdict")


def request_body(config: policy.JudgeCheck, text: str) -> dict[str, Any]:
    """The chat-completions request sent to the judge."""
    return {
        "model": config.model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": MAX_VERDICT_TOKENS,
        "temperature": 0,
        "stream": False,
    }


async def ask(session: aiohttp.ClientSession, config: policy.JudgeCheck, text: str) -> Verdict:
    """Ask the judge about `text` within `config.timeout_seconds`; raise JudgeError on failure."""
    url = config.url.rstrip("/") + "/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
    try:
        async with asyncio.timeout(config.timeout_seconds):
            async with session.post(url, json=request_body(config, text), timeout=timeout) as resp:
                if resp.status != 200:
                    raise JudgeError(f"HTTP {resp.status}")
                payload = await resp.json(content_type=None)
    except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError on 3.11
        raise JudgeError("timeout") from exc
    except aiohttp.ClientError as exc:
        raise JudgeError(type(exc).__name__) from exc
    except ValueError as exc:  # body is not JSON
        raise JudgeError("invalid JSON") from exc
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise JudgeError("unexpected response shape") from exc
    if not isinstance(content, str):
        raise JudgeError("unexpected response shape")
    return parse(content)
