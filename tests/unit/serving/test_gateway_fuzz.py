"""Fuzzing the gateway's request bodies (hypothesis): no answer is ever a 500 from our code.

The real `llm-serving gateway` process in front of the real `llm-serving sim`
process, every check on. Hypothesis draws chat and completion bodies whose keys are
the fields the gateway reads (and some it does not) and whose values are any JSON,
shaped near the real thing (messages with roles, contents in all their shapes, tool
calls, logprob and stream options) or not at all, plus bytes that are not JSON. Each
is posted over a socket (the standard library's client); the answer must be an
OpenAI-style JSON error or a success, never a 500.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LLM_SERVING = pathlib.Path(sys.executable).parent / "llm-serving"

FIELDS = [
    "model", "messages", "prompt", "suffix", "stream", "stream_options", "include_usage",
    "tools", "documents", "response_format", "chat_template", "chat_template_kwargs",
    "max_tokens", "temperature", "n", "logprobs", "top_logprobs", "return_token_ids",
    "prompt_embeds", "echo", "stop", "seed", "user",
]  # fmt: skip
MESSAGE_FIELDS = [
    "role", "content", "name", "reasoning", "reasoning_content", "refusal", "tool_calls",
    "tool_call_id", "tools", "function",
]  # fmt: skip
PART_FIELDS = ["type", "text", "refusal", "thinking", "name", "image_url"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["user", "assistant", "system", "tool", "text", "function", "true", "1"])
)
keys = st.sampled_from(FIELDS + MESSAGE_FIELDS + PART_FIELDS) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
parts = st.one_of(
    st.text(max_size=30),
    st.fixed_dictionaries({}, optional={key: json_values for key in PART_FIELDS}),
    json_values,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "tool", "developer"]) | json_values,
        "content": st.text(max_size=60) | st.lists(parts, max_size=3) | json_values,
        "name": st.text(max_size=10) | json_values,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.text(max_size=5),
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries(
                        {}, optional={"name": json_values, "arguments": json_values}
                    ),
                },
            ),
            max_size=2,
        )
        | json_values,
        "reasoning": json_values,
    },
)
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("sim-model") | json_values,
        "messages": st.lists(messages | json_values, max_size=4) | json_values,
        "stream": json_values,
        "stream_options": json_values,
        "tools": json_values,
        "documents": json_values,
        "response_format": json_values,
        "logprobs": json_values,
        "top_logprobs": json_values,
        "max_tokens": st.integers(min_value=-2, max_value=10) | json_values,
        "chat_template_kwargs": json_values,
    },
)
completion_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("sim-model") | json_values,
        "prompt": st.text(max_size=60) | st.lists(st.text(max_size=20), max_size=3) | json_values,
        "suffix": json_values,
        "stream": json_values,
        "logprobs": json_values,
        "echo": json_values,
        "max_tokens": st.integers(min_value=-2, max_value=10) | json_values,
    },
)
not_json = st.binary(max_size=60) | st.text(max_size=60).map(lambda t: ("{" + t).encode())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _process(args: list[str], log: pathlib.Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen([str(LLM_SERVING), *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("fuzz")
    sim_port, port = _free_port(), _free_port()
    sim = ["sim", "--host", "127.0.0.1", "--port", str(sim_port), "--model", "sim-model"]
    sim += ["--prefill-tokens-per-s", "1e9", "--decode-tokens-per-s", "1e5", "--output-tokens", "4"]
    gw = ["gateway", "--host", "127.0.0.1", "--port", str(port)]
    gw += ["--upstream", f"http://127.0.0.1:{sim_port}", "--check-workers", "0"]
    with _process(sim, work / "sim.log"), _process(gw, work / "gateway.log"):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the gateway did not become ready"
            time.sleep(0.2)
        yield url


def _post(url: str, data: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _check(status: int, body: bytes, sent: Any) -> None:
    assert status != 500, (sent, body[:500])
    if status >= 400:
        document = json.loads(body)
        assert set(document["error"]) >= {"message", "type", "code"}, body[:500]


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=chat_bodies)
def test_chat_bodies_never_get_a_500(gateway: str, body: dict[str, Any]) -> None:
    status, answer = _post(f"{gateway}/v1/chat/completions", json.dumps(body).encode())
    _check(status, answer, body)


@FUZZ
@given(body=completion_bodies)
def test_completion_bodies_never_get_a_500(gateway: str, body: dict[str, Any]) -> None:
    status, answer = _post(f"{gateway}/v1/completions", json.dumps(body).encode())
    _check(status, answer, body)


@FUZZ
@given(data=not_json, route=st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
def test_bytes_that_are_not_json_never_get_a_500(gateway: str, data: bytes, route: str) -> None:
    status, answer = _post(f"{gateway}{route}", data)
    _check(status, answer, data)
