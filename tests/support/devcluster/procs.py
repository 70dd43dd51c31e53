"""The process supervisor: detached components with pids, logs and a state file.

Each component runs in its own session with its log under the state directory; its
pid and kernel start time (a guard against pid reuse) go to `state.json`, so a later
command finds and stops it. A file lock serialises `up` and `down` of one cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.devcluster import model

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- processes


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held together so they are distinct)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def kernel_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (guards against pid reuse), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) is in parentheses and may contain spaces.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return fields[19]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int, start_time: str | None) -> bool:
    _reap(pid)
    current = kernel_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


def spawn(
    name: str, argv: list[str], state_dir: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    log_path = state_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("starting %s: %s", name, " ".join(argv))
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603 - our own binaries with our own arguments
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    # The process outlives this object: forget it without warnings; _reap collects it.
    proc.returncode = 0
    return {
        "pid": proc.pid,
        "start_time": kernel_start_time(proc.pid),
        "log": str(log_path),
        "argv": argv,
    }


def stop(name: str, info: dict[str, Any], grace: float = 15.0) -> None:
    pid = int(info["pid"])
    start_time = info.get("start_time")
    if not alive(pid, start_time):
        return
    logger.info("stopping %s (pid %d)", name, pid)
    # Each component leads its own session and process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid, start_time):
            return
        time.sleep(0.1)
    logger.warning("%s (pid %d) did not stop in %.0fs; killing it", name, pid, grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(pid, start_time):
        time.sleep(0.1)
    if alive(pid, start_time):
        raise model.ClusterError(f"{name} (pid {pid}) survived SIGKILL")


# --------------------------------------------------------------------------- state


def _state_path(config: model.ClusterConfig) -> Path:
    return config.state_dir / "state.json"


def load_state(config: model.ClusterConfig) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path(config).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_state(config: model.ClusterConfig, state: dict[str, Any]) -> None:
    tmp = _state_path(config).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(_state_path(config))


def lock_path(config: model.ClusterConfig) -> Path:
    return config.cache / "dev" / f".{config.name}.lock"


@contextlib.contextmanager
def locked(config: model.ClusterConfig) -> Iterator[None]:
    path = lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
