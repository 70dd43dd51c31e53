"""The processes of the gateway benchmark: the engine simulator, the gateways, the busy loops.

`started` runs the simulator on `OTHER_CORE` and each gateway (the one under test, one
with every check off, and optionally another checkout's) pinned to `GATEWAY_CORE`, and
stops them all; `spinners` holds the idle-priority busy loops that keep cores from
halting; `cpu_seconds` reads a process's CPU time. `bench/gateway.py` measures with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

GATEWAY_CORE = 0
OTHER_CORE = 1
MODEL = "bench-model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int) -> Any:
    cores = os.sched_getaffinity(0)
    target = {core} if core in cores else cores

    def pin() -> None:
        os.sched_setaffinity(0, target)

    return pin


def spawn(
    module: str,
    args: list[str],
    core: int,
    log: pathlib.Path,
    tree: pathlib.Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start the server whose command-line entry is `module`'s ``main``; from the checkout
    `tree` instead of this one when given."""
    entry = f"importlib.import_module({module!r}).main(sys.argv[1:])"
    code = f"import sys, importlib; sys.exit({entry})"
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree / "serving"), str(tree / "operator")])
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(core),
            env=env,
        )


async def wait_ready(url: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready in {limit} s")


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn_gateway(
    port: int,
    sim_port: int,
    policy: pathlib.Path,
    log: pathlib.Path,
    tree: pathlib.Path | None = None,
) -> subprocess.Popen[bytes]:
    args = [
        "--host", "127.0.0.1", "--port", str(port),
        "--upstream", f"http://127.0.0.1:{sim_port}", "--policy-file", str(policy),
        "--model-name", MODEL, "--log-level", "warning",
    ]  # fmt: skip
    return spawn("llm_serving.gateway.server", args, GATEWAY_CORE, log, tree)


@contextlib.contextmanager
def started(
    workdir: pathlib.Path, policy_json: str, baseline: pathlib.Path | None
) -> Iterator[tuple[dict[str, str], int]]:
    """The simulator, the gateway under test and a second gateway with every check off.

    Yields the base URL of each mode ("direct", "gateway", "bare", and "baseline" when
    `baseline` names another checkout) and the pid of the gateway under test. Every
    gateway is pinned to the gateway's core; all but the one under test are idle
    except in the sequential phases that measure them.
    """
    sim_port, gw_port, bare_port = free_port(), free_port(), free_port()
    policy, bare_policy = workdir / "policy.json", workdir / "bare.json"
    policy.write_text(policy_json)
    bare_policy.write_text('{"enabled": false}')
    sim = spawn(
        "llm_serving.sim.cli",
        [
            "--port", str(sim_port), "--model", MODEL, "--max-num-seqs", "4096",
            "--prefill-tokens-per-s", "1e9", "--decode-tokens-per-s", "1e6",
            "--max-model-len", "8192", "--output-tokens", "64", "--log-level", "WARNING",
        ],
        OTHER_CORE,
        workdir / "sim.log",
    )  # fmt: skip
    gateways = [
        spawn_gateway(gw_port, sim_port, policy, workdir / "gateway.log"),
        spawn_gateway(bare_port, sim_port, bare_policy, workdir / "bare.log"),
    ]
    urls = {
        "direct": f"http://127.0.0.1:{sim_port}",
        "gateway": f"http://127.0.0.1:{gw_port}",
        "bare": f"http://127.0.0.1:{bare_port}",
    }
    if baseline is not None:
        port = free_port()
        log = workdir / "baseline.log"
        gateways.append(spawn_gateway(port, sim_port, policy, log, baseline))
        urls["baseline"] = f"http://127.0.0.1:{port}"
    processes = [*gateways, sim]
    try:
        yield urls, gateways[0].pid
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def spinners(*cores: int) -> Iterator[dict[str, int]]:
    """A busy loop at idle priority (SCHED_IDLE) pinned to each of `cores`, stopped.

    Yields {core: pid}; the load generator continues a loop (SIGCONT) to keep its
    core from halting and stops it again (SIGSTOP). A running loop gets the core only
    when nothing else wants it, so it takes no time from the processes measured; what
    it removes is the cost of waking a halted vCPU (this VM polls for no time before
    it halts one: ``haltpoll.guest_halt_poll_ns=0``).
    """
    code = (
        "import os\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "while True:\n    pass\n"
    )
    processes = {
        str(core): subprocess.Popen([sys.executable, "-c", code], preexec_fn=pinned(core))
        for core in cores
    }
    try:
        time.sleep(0.3)  # each loop is at idle priority before it is first stopped
        for process in processes.values():
            process.send_signal(signal.SIGSTOP)
        yield {core: process.pid for core, process in processes.items()}
    finally:
        for process in processes.values():
            process.kill()
            process.wait()


def print_logs(folder: pathlib.Path) -> None:
    for log in sorted(folder.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
