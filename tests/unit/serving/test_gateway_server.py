"""The gateway's command line and its JSON log lines."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest

from llm_serving.gateway import jsonlog, server


def test_flags_become_settings() -> None:
    args = server.parser().parse_args(
        [
            "--port", "9090", "--upstream", "http://engine:8000", "--policy-file", "/etc/p.json",
            "--api-keys-dir", "/etc/keys", "--tokenizer", "/models/tokenizer.json",
            "--model-name", "llama",
        ]
    )  # fmt: skip
    settings = server.settings_from(args)
    assert settings.host == "0.0.0.0"
    assert settings.port == 9090
    assert settings.upstream == "http://engine:8000"
    assert settings.policy_file == pathlib.Path("/etc/p.json")
    assert settings.api_keys_dir == pathlib.Path("/etc/keys")
    assert settings.tokenizer == pathlib.Path("/models/tokenizer.json")
    assert settings.model_name == "llama"
    defaults = server.settings_from(server.parser().parse_args([]))
    assert (defaults.port, defaults.upstream, defaults.policy_file) == (
        8080,
        "http://127.0.0.1:8000",
        None,
    )
    assert defaults.check_workers is None  # one per CPU of the pod
    workers = server.settings_from(
        server.parser().parse_args(
            ["--check-workers", "0", "--offload-chars", "100", "--check-timeout", "5"]
        )
    )
    assert (workers.check_workers, workers.offload_chars, workers.check_timeout) == (0, 100, 5.0)


def _main(args: list[str]) -> int:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access = logging.getLogger("aiohttp.access")
    access_level = access.level
    try:  # main() installs the JSON handler on the root logger; put pytest's back after
        return server.main(args)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        access.setLevel(access_level)


@pytest.mark.parametrize("url", ["https://127.0.0.1:8000", "unix:///run/vllm.sock", "127.0.0.1"])
def test_unusable_engine_url_exits_2(url: str) -> None:
    assert _main(["--host", "127.0.0.1", "--port", "0", "--upstream", url]) == 2


def test_invalid_policy_file_exits_2(tmp_path: pathlib.Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"enabled": "sometimes"}')
    assert _main(["--host", "127.0.0.1", "--port", "0", "--policy-file", str(policy)]) == 2


def test_json_log_line_carries_request_id_and_fields() -> None:
    formatter = jsonlog.JsonFormatter()
    record = logging.LogRecord(
        "llm_serving.gateway.app", logging.INFO, __file__, 1, "request %s", ("done",), None
    )
    record.fields = {"status": 200, "route": "/v1/chat/completions"}
    token = jsonlog.request_id.set("req-7")
    try:
        line = formatter.format(record)
    finally:
        jsonlog.request_id.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["msg"] == "request done"
    assert entry["request_id"] == "req-7"
    assert entry["status"] == 200
    assert entry["level"] == "info"


def test_event_loop_is_uvloop_when_installed() -> None:
    import uvloop

    for kind, expected in (("auto", uvloop.Loop), ("uvloop", uvloop.Loop)):
        loop = server.event_loop(kind)
        try:
            assert isinstance(loop, expected)
        finally:
            loop.close()
    loop = server.event_loop("asyncio")
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert server.parser().parse_args([]).event_loop == "auto"


@pytest.mark.parametrize(
    ("env", "flag", "level"),
    [("DEBUG", None, logging.DEBUG), ("warning", None, logging.WARNING), (None, None, logging.INFO),
     ("debug", "error", logging.ERROR)],
)  # fmt: skip
def test_log_level_comes_from_the_environment_the_operator_sets(
    monkeypatch: pytest.MonkeyPatch, env: str | None, flag: str | None, level: int
) -> None:
    """spec.gateway.logLevel reaches the gateway as LOG_LEVEL; --log-level wins over it."""
    if env is None:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("LOG_LEVEL", env)
    seen: list[int] = []
    root = logging.getLogger()
    original = root.setLevel
    monkeypatch.setattr(root, "setLevel", lambda value: (original(value), seen.append(root.level)))
    args = ["--host", "127.0.0.1", "--port", "0", "--upstream", "unix:///no"]
    assert _main(args + (["--log-level", flag] if flag else [])) == 2
    assert seen[0] == level


def test_an_unknown_log_level_in_the_environment_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    assert _main(["--port", "0"]) == 2
