"""The policy file: JSON or YAML, hot reload (ConfigMap symlink swaps too), bad files refused."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from typing import Any

import pytest

from llm_serving import policy
from llm_serving.gateway import config
from tests.unit.serving import gateway_support as support

EMAIL = "jane.roe@example.org"
CHAT = {"model": "test-model", "messages": [{"role": "user", "content": f"mail {EMAIL}"}]}


def test_parse_json_and_yaml() -> None:
    parsed = config.parse_policy('{"enabled": true, "input": {"pii": {"action": "block"}}}')
    assert parsed.input.pii.action is policy.Action.BLOCK
    parsed = config.parse_policy("enabled: true\ncache:\n  enabled: true\n", "policy.yaml")
    assert parsed.cache.enabled
    parsed = config.parse_policy("enabled: true\n")  # YAML without the extension
    assert parsed.enabled
    assert config.parse_policy("").enabled is False  # an empty file is the defaults


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        '{"enabled": true, "bogus": 1}',
        '{"input": {"promptInjection": {"action": "redact"}}}',
        "key: [unclosed",
    ],
)
def test_invalid_policies_are_rejected(text: str) -> None:
    with pytest.raises(config.PolicyError):
        config.parse_policy(text)


def test_signature_follows_configmap_symlink_swap(tmp_path: pathlib.Path) -> None:
    path = _configmap(tmp_path, {"enabled": True}, "..2025_01_01")
    before = config.signature(path)
    _swap(tmp_path, {"enabled": False}, "..2025_01_02")
    after = config.signature(path)
    assert before is not None
    assert after is not None
    assert before != after
    assert config.signature(tmp_path / "missing.json") is None


def _configmap(root: pathlib.Path, document: dict[str, Any], version: str) -> pathlib.Path:
    """Lay out a folder the way the kubelet mounts a ConfigMap."""
    (root / version).mkdir()
    (root / version / "policy.json").write_text(json.dumps(document))
    os.symlink(version, root / "..data")
    os.symlink("..data/policy.json", root / "policy.json")
    return root / "policy.json"


def _swap(root: pathlib.Path, document: dict[str, Any] | str, version: str) -> None:
    """Update it the way the kubelet does: new folder, atomic rename of the ..data symlink."""
    (root / version).mkdir()
    text = document if isinstance(document, str) else json.dumps(document)
    (root / version / "policy.json").write_text(text)
    os.symlink(version, root / "..data_tmp")
    os.replace(root / "..data_tmp", root / "..data")


async def _wait_for(predicate: Any, limit: float = 3.0) -> None:
    for _ in range(int(limit / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def _status(stack: support.Stack) -> int:
    async with stack.client.post(f"{stack.url}/v1/chat/completions", json=CHAT) as response:
        return response.status


async def _metrics(stack: support.Stack) -> str:
    async with stack.client.get(f"{stack.url}/metrics") as response:
        return await response.text()


async def test_changed_policy_is_picked_up_and_invalid_one_ignored(tmp_path: pathlib.Path) -> None:
    async with support.stack(tmp_path, policy={"enabled": True}) as stack:
        gateway = stack.gateway.gateway
        assert await _status(stack) == 200
        assert EMAIL not in stack.engine.requests[-1]["messages"][0]["content"]

        path = tmp_path / "policy.json"
        path.write_text(json.dumps({"enabled": True, "input": {"pii": {"action": "block"}}}))
        await _wait_for(lambda: gateway.runtime.policy.input.pii.action is policy.Action.BLOCK)
        assert await _status(stack) == 400

        path.write_text("{ this is not json")
        await _wait_for(
            lambda: (
                'llm_gateway_policy_reloads_total{result="error"} 1.0'
                in gateway.metrics.render()[0].decode()
            )
        )
        assert gateway.runtime.policy.input.pii.action is policy.Action.BLOCK
        assert await _status(stack) == 400

        path.write_text(json.dumps({"enabled": True, "input": {"pii": {"action": "monitor"}}}))
        await _wait_for(lambda: gateway.runtime.policy.input.pii.action is policy.Action.MONITOR)
        assert await _status(stack) == 200
        assert stack.engine.requests[-1]["messages"][0]["content"] == f"mail {EMAIL}"
        text = await _metrics(stack)
        assert 'llm_gateway_policy_reloads_total{result="success"} 3.0' in text


async def test_configmap_swap_is_picked_up(tmp_path: pathlib.Path) -> None:
    mount = tmp_path / "mount"
    mount.mkdir()
    path = _configmap(mount, {"enabled": True}, "..2025_01_01")
    engine = support.ScriptedEngine()
    engine_server = await support.start_engine(engine)
    running = await support.start_gateway(
        str(engine_server.make_url("")).rstrip("/"), tmp_path, policy_file=path
    )
    gateway = running.gateway
    try:
        assert gateway.runtime.policy.input.pii.action is policy.Action.REDACT
        _swap(mount, {"enabled": True, "input": {"pii": {"action": "block"}}}, "..2025_01_02")
        await _wait_for(lambda: gateway.runtime.policy.input.pii.action is policy.Action.BLOCK)
        _swap(mount, "enabled: [", "..2025_01_03")
        await asyncio.sleep(0.3)
        assert gateway.runtime.policy.input.pii.action is policy.Action.BLOCK
    finally:
        await running.close()
        await engine_server.close()


async def test_invalid_policy_at_startup_fails(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"enabled": "maybe"}')
    with pytest.raises(config.PolicyError):
        await support.start_gateway("http://127.0.0.1:9", tmp_path, policy=None, policy_file=path)
