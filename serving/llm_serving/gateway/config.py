"""Gateway settings, the policy file and the watch that reloads mounted files without a restart.

The operator renders `spec.guardrails` to a ConfigMap mounted into the gateway
container; this module reads that file (JSON, or YAML by extension or when it does
not parse as JSON) into the shared `policy.GuardrailPolicy` model. Kubernetes
updates a mounted ConfigMap or Secret by writing a new timestamped folder and
swapping the `..data` symlink, so a file's path stays the same while the file it
resolves to changes: `signature()` therefore stats through the symlinks (inode,
size, mtime, resolved path) and `Watcher` polls those signatures every couple of
seconds, calling back when one changes. A new policy that fails to parse or validate
is refused by the caller, which keeps the policy it had.
"""

from __future__ import annotations

import asyncio
import collections.abc
import dataclasses
import json
import logging
import os
import pathlib
from typing import Any

import pydantic
import yaml

from llm_serving import policy

logger = logging.getLogger(__name__)

#: How often mounted files are checked for changes (seconds).
POLL_INTERVAL = 2.0

Signature = tuple[object, ...]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Command-line settings of one gateway process."""

    host: str = "0.0.0.0"  # noqa: S104 - a sidecar listens on the pod IP
    port: int = 8080
    upstream: str = "http://127.0.0.1:8000"
    policy_file: pathlib.Path | None = None
    api_keys_dir: pathlib.Path | None = None
    tokenizer: pathlib.Path | None = None
    model_name: str | None = None
    poll_interval: float = POLL_INTERVAL
    #: Connections kept to the engine; vLLM's default max-num-seqs is 256.
    upstream_connections: int = 512
    #: Processes that check long texts (`workers`); None: one per CPU of the pod; 0: none,
    #: every check runs on the event loop.
    check_workers: int | None = None
    #: Requests (and answers) with more characters of text than this are checked by the
    #: workers; shorter ones on the event loop, where they cost less than the hand-off.
    offload_chars: int = 32 * 1024
    #: Seconds a worker may spend on one request's checks before it is replaced (503).
    check_timeout: float = 60.0
    #: Seconds a request head may take to arrive (from the connection or the previous
    #: answer); an idle keep-alive connection is closed after as long.
    head_timeout: float = 15.0
    #: Seconds a request body may take to arrive whole (408 and a close past it).
    body_timeout: float = 60.0
    #: Seconds one write of a streamed answer may wait for a client that does not read.
    write_timeout: float = 60.0
    #: Seconds the requests in progress get to finish when the gateway stops.
    shutdown_timeout: float = 30.0


class PolicyError(Exception):
    """The policy file cannot be read, parsed or validated."""


def default_policy() -> policy.GuardrailPolicy:
    """The policy used without a policy file: every default check on."""
    return policy.GuardrailPolicy(enabled=True)


def parse_policy(text: str, name: str = "policy") -> policy.GuardrailPolicy:
    """Parse a JSON or YAML policy document; `name` picks YAML for .yaml/.yml files."""
    data: Any
    try:
        if name.endswith((".yaml", ".yml")):
            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{name} is neither JSON nor YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{name} must hold a mapping, not {type(data).__name__}")
    try:
        return policy.load(data)
    except pydantic.ValidationError as exc:
        raise PolicyError(f"{name} is not a valid guardrail policy: {exc}") from exc


def read_policy(path: pathlib.Path) -> policy.GuardrailPolicy:
    """Read and validate the policy file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc
    return parse_policy(text, path.name)


def _stat(path: pathlib.Path) -> Signature:
    st = path.stat()  # follows the ..data symlink swap
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def signature(path: pathlib.Path) -> Signature | None:
    """What identifies the current content of a file or of a folder's visible files.

    None when the path does not exist (yet). For a folder, hidden entries such as
    `..data` and the timestamped folders are skipped; their effect shows through the
    resolved files.
    """
    try:
        if not path.is_dir():
            return _stat(path)
        entries: list[object] = []
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            try:
                entries.append((child.name, *_stat(child)))
            except OSError:
                continue
        return tuple(entries)
    except OSError:
        return None


OnChange = collections.abc.Callable[[], collections.abc.Awaitable[None]]


class Watcher:
    """Polls file signatures and awaits a callback whenever one changes."""

    def __init__(self, interval: float = POLL_INTERVAL) -> None:
        self.interval = interval
        self._watches: list[tuple[pathlib.Path, OnChange]] = []
        self._seen: dict[pathlib.Path, Signature | None] = {}

    def add(self, path: pathlib.Path, on_change: OnChange) -> None:
        """Watch `path`; its current signature is the baseline."""
        self._watches.append((path, on_change))
        self._seen[path] = signature(path)

    async def check_once(self) -> None:
        """Compare every signature with the last seen one and call back on change."""
        for path, on_change in self._watches:
            current = signature(path)
            if current == self._seen.get(path):
                continue
            self._seen[path] = current
            logger.info("%s changed; reloading", path)
            try:
                await on_change()
            except Exception:
                logger.exception("reloading %s failed", path)

    async def run(self) -> None:
        """Poll forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.check_once()
