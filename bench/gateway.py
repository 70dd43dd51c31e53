"""Benchmark: the engine simulator direct versus through the guardrail gateway, side by side.

One run starts three kinds of process on loopback: the engine simulator (configured
fast, so that what is measured is the gateway, not the simulated GPU), the gateway
in front of it with the default checks on (`{"enabled": true}`: prompt injection,
PII, toxicity, ...), and a load generator. The gateway is pinned to core 0 with
`os.sched_setaffinity`; the simulator and the load generator share core 1, the same
in both modes, so the gateway has exactly one core to itself.

Every request carries a distinct benign 1 KB prompt (see `prompt`). Measured:

- latency: sequential non-streamed requests, p50 and p99, and what the gateway adds;
- time to first token: sequential streamed requests, to the first event with text;
- throughput at saturation: a fixed number of concurrent clients for a fixed time,
  requests per second, and the gateway's own CPU time per request (so the capacity
  of one core is also stated when the simulator, not the gateway, is the bottleneck).

The two sequential phases alternate between direct and gateway every 25 requests,
the same prompts to both, so that both columns see the same background load on the
machine; the throughput runs alternate too, in three runs per mode.

A second table, with no goal, says where the added latency goes. The latency phase
also measures a second gateway with every check off (what the proxy costs without
the guardrails). And since this VM halts an idle vCPU at once
(``haltpoll.guest_halt_poll_ns=0``), while in a sequential benchmark the gateway's
core idles twice per request, the latency phase runs under two conditions,
interleaved block by block: the machine as it is, which the goal is judged on, and
a busy loop at idle priority (SCHED_IDLE) on each core, which runs only when the
core would otherwise halt and takes no time from the processes measured. The
difference between the two is what waking the halted vCPUs costs.

With `--baseline DIR`, a checkout of another commit (made with `git worktree add`,
its compiled module built in place with `python setup.py build_ext --inplace`), a
third gateway runs that commit's code with the same policy on the same core, and
answers the sequential phases in turn with the others: a same-run comparison of two
versions, printed as one more column of the second table.

The processes (simulator, gateways, busy loops) are started and stopped by
`gatewaybench.processes`; this file generates the load and prints the tables.

It prints a markdown table and the goals (at most 1 ms added at p50, at least 70% of
direct throughput) with pass or fail. Bounded: by default 1 000 sequential requests
per mode and condition, half as many streamed, and 6 s at saturation per mode; a full
run takes about a minute.

    .venv/bin/python bench/gateway.py                      # full run
    .venv/bin/python bench/gateway.py --quick              # smoke run
    .venv/bin/python bench/gateway.py --baseline ../old    # and another commit's gateway
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from gatewaybench import processes

GOAL_P50_ADDED_MS = 1.0
GOAL_THROUGHPUT_RATIO = 0.70
BLOCK = 25  # sequential requests per mode before the latency phases switch modes
ROUNDS = 3  # throughput runs per mode, alternating between the modes
_TOTALS = ("done", "seconds", "errors", "total", "total_seconds", "gateway_cpu")
FIRST_PROMPT = {"latency": 0, "ttft": 1_000_000, "throughput": 2_000_000}
# The latency phase's conditions: the cores kept from halting by a busy loop (see the
# module docstring). The goal is judged under MEASURED, the machine as it is.
MEASURED = "idle cores halt (the machine as it is)"
CONDITIONS = {
    MEASURED: [],
    "both cores kept from halting": [processes.GATEWAY_CORE, processes.OTHER_CORE],
}

SENTENCES = (
    "Our team is planning the quarterly offsite and would like a short agenda.",
    "We have two days, about thirty people, and a budget for one dinner out.",
    "Please suggest sessions on roadmap planning, a retrospective, and time for talks.",
    "Keep the tone friendly and practical, and leave room for informal conversation.",
    "The venue has one large hall, three breakout rooms and a garden for lunch.",
    "Several colleagues travel by train, so the first day should start after ten.",
    "We would like one session where each group shows what it shipped this quarter.",
    "Add a short list of icebreakers that work for people who have never met.",
    "The second afternoon should end early enough for people to travel home.",
    "Mention what we should prepare in advance and who could own each part.",
    "Some people prefer vegetarian food, so the dinner place needs good options.",
    "Finally, draft a two-line invitation we can send to everyone this week.",
)


def prompt(number: int) -> str:
    """A distinct benign 1 KB prompt for request `number` (sentences in a varying order).

    Every request carries new text (each phase numbers its prompts from its own
    `FIRST_PROMPT` on), so the gateway's memo of checked texts never answers: the
    checks run in full on every request, as they do on fresh traffic.
    """
    start = number % len(SENTENCES)
    paragraph = " ".join(SENTENCES[start:] + SENTENCES[:start])
    return f"Request {number}. {paragraph} {paragraph}"[:1024]


# ----------------------------------------------------------------------------- load generator


def _body(stream: bool, max_tokens: int, number: int) -> bytes:
    return json.dumps(
        {
            "model": processes.MODEL,
            "messages": [{"role": "user", "content": prompt(number)}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }
    ).encode()


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> float:
    """Milliseconds to the whole response, or to the first event with text when streaming."""
    started = time.perf_counter()
    async with session.post(url, data=body) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        if not stream:
            await response.read()
            return (time.perf_counter() - started) * 1000
        first = None
        async for line in response.content:
            if (
                first is None
                and line.startswith(b"data: {")
                and b'"content":"' in line
                and b'"content":""' not in line
            ):
                first = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream carried no text")
    return (first - started) * 1000


async def _paired(
    session: aiohttp.ClientSession,
    urls: dict[str, str],
    count: int,
    warmup: int,
    stream: bool,
    conditions: dict[str, list[int]],
    spinners: dict[str, int],
) -> dict[str, dict[str, list[float]]]:
    """Sequential requests, alternating between the modes every `BLOCK` requests, and
    between the wake-up `conditions` (the cores kept from halting) every block too.

    Alternating puts every mode and condition under the same background load on the
    machine, so a noisy neighbour shifts all the columns instead of one; runs of
    `BLOCK` requests keep the back-to-back cadence within a mode. The modes get the
    same prompts within a condition, and each condition its own prompts (the gateway
    remembers the results of the prompts it has checked). `spinners` maps a core to
    its stopped busy loop (see `processes.spinners`), continued for the conditions naming it.
    """
    max_tokens = 64 if stream else 16
    first = FIRST_PROMPT["ttft" if stream else "latency"]
    samples: dict[str, dict[str, list[float]]] = {
        name: {mode: [] for mode in urls} for name in conditions
    }
    modes = list(urls)
    names = list(conditions)
    for start in range(0, warmup + count, BLOCK):
        numbers = range(start, min(start + BLOCK, warmup + count))
        turn = start // BLOCK
        for index in range(len(names)):
            name = names[(index + turn) % len(names)]
            for core, pid in spinners.items():
                kept = int(core) in conditions[name]
                os.kill(pid, signal.SIGCONT if kept else signal.SIGSTOP)
            await asyncio.sleep(0.01)
            offset = first + names.index(name) * 100_000
            for mode in modes if turn % 2 else reversed(modes):
                for number in numbers:
                    body = _body(stream, max_tokens, offset + number)
                    elapsed = await _one(session, urls[mode], body, stream)
                    if number >= warmup:
                        samples[name][mode].append(elapsed)
    for pid in spinners.values():
        os.kill(pid, signal.SIGSTOP)
    return samples


async def _throughput(
    session: aiohttp.ClientSession, url: str, concurrency: int, duration: float
) -> Any:
    done = errors = total = 0
    measuring = False
    numbers = itertools.count(FIRST_PROMPT["throughput"])  # one prompt per request sent

    async def client(stop: float) -> None:
        nonlocal done, errors, total
        while time.perf_counter() < stop:
            body = _body(False, 16, next(numbers))
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            total += 1
            if measuring:
                if ok:
                    done += 1
                else:
                    errors += 1

    warm = 0.5
    start = time.perf_counter()
    tasks = [asyncio.create_task(client(start + warm + duration)) for _ in range(concurrency)]
    await asyncio.sleep(warm)
    measuring = True
    measured_from = time.perf_counter()
    await asyncio.gather(*tasks)
    finished = time.perf_counter()
    elapsed = finished - measured_from
    return {
        "done": done,
        "seconds": elapsed,
        "errors": errors,
        "total": total,
        "total_seconds": finished - start,
    }


async def _worker(spec: dict[str, Any]) -> Any:
    connector = aiohttp.TCPConnector(limit=spec.get("concurrency", 1) + 4)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        path = "/v1/chat/completions"
        if spec["phase"] in ("latency", "ttft"):
            urls = {mode: url + path for mode, url in spec["urls"].items()}
            stream = spec["phase"] == "ttft"
            return await _paired(
                session,
                urls,
                spec["count"],
                spec["warmup"],
                stream,
                spec["conditions"],
                spec["spinners"],
            )
        return await _throughput(session, spec["url"] + path, spec["concurrency"], spec["duration"])


def _load(spec: dict[str, Any]) -> Any:
    """Run one phase in a load-generator process pinned next to the simulator."""
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        check=False,
        capture_output=True,
        preexec_fn=processes.pinned(processes.OTHER_CORE),
        timeout=300,
    )
    if completed.returncode:
        raise RuntimeError(f"load generator failed:\n{completed.stderr.decode()[-3000:]}")
    return json.loads(completed.stdout)


async def _means(gateway_url: str) -> dict[str, float]:
    """Mean seconds per observation of the gateway's own timing histograms.

    Keys: "gateway" (time inside the gateway, excluding waits on the engine) and the
    guardrail stages ("input", "output").
    """
    async with aiohttp.ClientSession() as session, session.get(f"{gateway_url}/metrics") as r:
        text = await r.text()
    wanted = {
        "llm_gateway_added_latency_seconds": "route",
        "llm_gateway_guardrail_check_duration_seconds": "stage",
    }
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        for metric, label in wanted.items():
            for suffix, table in (("_sum", sums), ("_count", counts)):
                if name == metric + suffix and f'{label}="' in rest:
                    key = rest.split(f'{label}="', 1)[1].split('"', 1)[0]
                    key = "gateway" if label == "route" else key
                    table[key] = table.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return {key: sums[key] / counts[key] for key in sums if counts.get(key)}


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Row:
    metric: str
    direct: str
    gateway: str
    added: str
    goal: str = ""
    result: str = ""


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _run(args: argparse.Namespace) -> int:
    count, warmup = (60, 10) if args.quick else (args.requests, 50)
    duration = 2.0 if args.quick else args.duration
    with (
        tempfile.TemporaryDirectory() as tmp,
        processes.started(pathlib.Path(tmp), args.policy, args.baseline) as (urls, gw_pid),
    ):
        try:
            await processes.wait_ready(f"{urls['direct']}/health")
            for mode in urls.keys() - {"direct"}:
                await processes.wait_ready(f"{urls[mode]}/ready")
        except RuntimeError:
            processes.print_logs(pathlib.Path(tmp))
            raise
        pair = {mode: urls[mode] for mode in ("direct", "gateway")}
        with processes.spinners(processes.GATEWAY_CORE, processes.OTHER_CORE) as spinners:
            by_condition = _load(
                {
                    "phase": "latency",
                    "urls": urls,
                    "count": count,
                    "warmup": warmup,
                    "conditions": CONDITIONS,
                    "spinners": spinners,
                }
            )
            inside = await _means(urls["gateway"])  # sequential, non-streamed requests so far
            ttft = _load(
                {
                    "phase": "ttft",
                    "urls": pair,
                    "count": count // 2,
                    "warmup": warmup,
                    "conditions": {MEASURED: CONDITIONS[MEASURED]},
                    "spinners": spinners,
                }
            )[MEASURED]
        lat = by_condition[MEASURED]
        tput = {mode: dict.fromkeys(_TOTALS, 0.0) for mode in pair}
        for round_ in range(ROUNDS):  # alternating, so drift in the machine's speed hits both
            for mode in reversed(pair) if round_ % 2 else pair:
                cpu_before = processes.cpu_seconds(gw_pid)
                spec = {
                    "phase": "throughput",
                    "url": pair[mode],
                    "concurrency": args.concurrency,
                    "duration": duration / ROUNDS,
                }
                result = _load(spec)
                result["gateway_cpu"] = processes.cpu_seconds(gw_pid) - cpu_before
                for key in _TOTALS:
                    tput[mode][key] += result[key]
        for totals in tput.values():
            totals["rps"] = totals["done"] / totals["seconds"]

    rows: list[Row] = []
    p50_added = _pct(lat["gateway"], 0.5) - _pct(lat["direct"], 0.5)
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        d, g = _pct(lat["direct"], q), _pct(lat["gateway"], q)
        goal = f"≤ {GOAL_P50_ADDED_MS:g} ms" if name == "p50" else ""
        result = ("PASS" if p50_added <= GOAL_P50_ADDED_MS else "FAIL") if name == "p50" else ""
        rows.append(
            Row(f"latency {name} (ms)", f"{d:.2f}", f"{g:.2f}", f"{g - d:+.2f} ms", goal, result)
        )
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        d, g = _pct(ttft["direct"], q), _pct(ttft["gateway"], q)
        rows.append(
            Row(f"time to first token {name} (ms)", f"{d:.2f}", f"{g:.2f}", f"{g - d:+.2f} ms")
        )
    ratio = tput["gateway"]["rps"] / tput["direct"]["rps"]
    rows.append(
        Row(
            f"throughput, {args.concurrency} clients (req/s)",
            f"{tput['direct']['rps']:.0f}",
            f"{tput['gateway']['rps']:.0f}",
            f"{ratio:.0%} of direct",
            f"≥ {GOAL_THROUGHPUT_RATIO:.0%}",
            "PASS" if ratio >= GOAL_THROUGHPUT_RATIO else "FAIL",
        )
    )
    through = tput["gateway"]
    cpu_per_request = through["gateway_cpu"] / max(1, through["total"])
    capacity = 1 / cpu_per_request if cpu_per_request else float("inf")
    busy = min(1.0, through["gateway_cpu"] / through["total_seconds"])
    rows.append(
        Row(
            "gateway CPU per request (ms)",
            "",
            f"{cpu_per_request * 1000:.2f}",
            f"{busy:.0%} of its core busy; ~{capacity:.0f} req/s per core",
        )
    )
    for key, name in (
        ("gateway", "time inside the gateway per request"),
        ("input", "of which input checks"),
        ("output", "of which output checks"),
    ):
        if key in inside:
            rows.append(Row(f"{name} (ms, mean)", "", f"{inside[key] * 1000:.3f}", ""))
    errors = tput["direct"]["errors"] + tput["gateway"]["errors"]

    print(f"\nGateway benchmark: distinct 1 KB prompts, default guardrails on, {count} sequential")
    print(f"requests per mode (alternating every {BLOCK}), {count // 2} streamed for TTFT,")
    print(f"{duration:g} s at saturation per mode, in {ROUNDS} alternating runs.")
    print(
        f"Gateway on core {processes.GATEWAY_CORE}; "
        f"simulator and load generator on core {processes.OTHER_CORE}.\n"
    )
    print("| metric | direct | via gateway | added | goal | result |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for row in rows:
        cells = (row.metric, row.direct, row.gateway, row.added, row.goal, row.result)
        print("| " + " | ".join(cells) + " |")
    print("\nWhere the added latency goes (p50 of sequential requests, ms; no goal here):\n")
    columns = {"gateway": "default checks", "bare": "every check off"}
    if args.baseline is not None:
        columns["baseline"] = f"baseline ({args.baseline.name}), same checks"
    print("| condition | direct | " + " | ".join(f"{c} | added" for c in columns.values()) + " |")
    print("| --- | ---: |" + " ---: | ---: |" * len(columns))
    for name, samples in by_condition.items():
        label = f"{name}, as in the table above" if name == MEASURED else name
        d = _pct(samples["direct"], 0.5)
        cells = [label, f"{d:.2f}"]
        for mode in columns:
            p50 = _pct(samples[mode], 0.5)
            cells += [f"{p50:.2f}", f"{p50 - d:+.2f}"]
        print("| " + " | ".join(cells) + " |")
    if errors:
        print(f"\n{errors} requests failed during the throughput runs.")
    passed = p50_added <= GOAL_P50_ADDED_MS and ratio >= GOAL_THROUGHPUT_RATIO
    print(f"\nGoals: {'all met' if passed else 'NOT all met'}.")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per mode")
    parser.add_argument("--concurrency", type=int, default=64, help="clients at saturation")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds at saturation")
    parser.add_argument(
        "--policy",
        default='{"enabled": true}',
        help="the gateway's policy document (default: every default check on)",
    )
    parser.add_argument(
        "--baseline",
        type=pathlib.Path,
        help="a checkout of another commit whose gateway is measured beside this one "
        "(its compiled module built in place)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "serving" / "llm_serving").is_dir():
        parser.error(f"--baseline {args.baseline}: not a checkout of this project")
    if args.worker:
        print(json.dumps(asyncio.run(_worker(json.loads(args.worker)))))
        return 0
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
