"""The benchmark's output: a table, the spread over seeds, JSON lines, the goal check, PNG plots."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence

from fleetsim import fleet

GOAL_SLO = 0.99
GOAL_GPU_RATIO = 1.15


def _oracle(results: Sequence[fleet.Result], trace: str) -> fleet.Result | None:
    return next((r for r in results if r.trace == trace and r.policy == "oracle"), None)


def table(results: Sequence[fleet.Result]) -> str:
    """One markdown row per trace and policy."""
    lines = [
        "| trace | policy | within SLO | p95 wait (s) | GPU-hours | vs oracle | scale events |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        oracle = _oracle(results, result.trace)
        ratio = (
            f"{result.gpu_hours / oracle.gpu_hours:.2f}x" if oracle and oracle.gpu_hours else "-"
        )
        name = f"{result.policy} (reference)" if result.reference else result.policy
        lines.append(
            f"| {result.trace} | {name} | {100 * result.slo_attainment:.2f}% "
            f"| {result.p95_wait:.1f} | {result.gpu_hours:.1f} | {ratio} "
            f"| {result.scale_events} |"
        )
    return "\n".join(lines)


def spread(by_seed: Mapping[int, Sequence[fleet.Result]]) -> str:
    """Per trace and policy over the seeds: mean and range of both measures, and how often
    the builtin met each goal."""
    seeds = sorted(by_seed)
    lines = [
        f"Over seeds {seeds[0]}-{seeds[-1]} (mean, and min-max):",
        "",
        "| trace | policy | within SLO | GPU-hours vs oracle |",
        "| --- | --- | ---: | ---: |",
    ]
    first = by_seed[seeds[0]]
    for result in first:
        runs = [
            r
            for seed in seeds
            for r in by_seed[seed]
            if (r.trace, r.policy) == (result.trace, result.policy)
        ]
        slo = [100 * r.slo_attainment for r in runs]
        ratio = []
        for seed in seeds:
            oracle = _oracle(by_seed[seed], result.trace)
            mine = next(
                r for r in by_seed[seed] if (r.trace, r.policy) == (result.trace, result.policy)
            )
            if oracle and oracle.gpu_hours:
                ratio.append(mine.gpu_hours / oracle.gpu_hours)
        name = f"{result.policy} (reference)" if result.reference else result.policy
        lines.append(
            f"| {result.trace} | {name} | {sum(slo) / len(slo):.2f}% "
            f"({min(slo):.2f}-{max(slo):.2f}) | {sum(ratio) / len(ratio):.2f}x "
            f"({min(ratio):.2f}-{max(ratio):.2f}) |"
        )
    lines.append("")
    tally: dict[str, int] = {}
    for seed in seeds:
        for line in goals(by_seed[seed]):
            trace, verdict, text = line.split(": ", 2)
            label = f"{trace}: {_goal_name(text)}"
            tally[label] = tally.get(label, 0) + (verdict == "met")
    for label, met in tally.items():
        lines.append(f"{label}: met on {met} of {len(seeds)} seeds")
    return "\n".join(lines)


def _goal_name(text: str) -> str:
    """The goal a line of `goals` is about, without its numbers."""
    if text.startswith("within SLO"):
        return f">= {100 * GOAL_SLO:.0f}% within the SLO"
    if text.startswith("GPU-hours") and "oracle" in text:
        return f"<= {GOAL_GPU_RATIO}x the oracle's GPU-hours"
    return text.split(" (")[0]


def json_lines(results: Sequence[fleet.Result]) -> str:
    """One JSON object per line: trace, policy, slo_attainment, gpu_hours, scale_events."""
    return "\n".join(
        json.dumps(
            {
                "trace": r.trace,
                "policy": r.policy,
                "slo_attainment": round(r.slo_attainment, 6),
                "gpu_hours": round(r.gpu_hours, 3),
                "scale_events": r.scale_events,
                "reference": r.reference,
            }
        )
        for r in results
    )


def goals(results: Sequence[fleet.Result]) -> list[str]:
    """Per trace: whether the builtin policy met each goal, and by how much."""
    lines = []
    for trace in dict.fromkeys(r.trace for r in results):
        mine = next((r for r in results if r.trace == trace and r.policy == "builtin"), None)
        oracle = _oracle(results, trace)
        if mine is None or oracle is None:
            continue
        others = [
            r for r in results if r.trace == trace and r.policy in ("keda-like", "kubeai-like")
        ]
        ratio = mine.gpu_hours / oracle.gpu_hours if oracle.gpu_hours else float("inf")
        checks = [
            (
                f"within SLO {100 * mine.slo_attainment:.2f}% >= {100 * GOAL_SLO:.0f}%",
                mine.slo_attainment >= GOAL_SLO,
            ),
            (f"GPU-hours {ratio:.3f}x oracle <= {GOAL_GPU_RATIO}x", ratio <= GOAL_GPU_RATIO),
        ]
        for other in others:
            checks.append(
                (
                    f"SLO better than {other.policy} ({100 * mine.slo_attainment:.2f}% vs "
                    f"{100 * other.slo_attainment:.2f}%)",
                    mine.slo_attainment > other.slo_attainment,
                )
            )
            checks.append(
                (
                    f"GPU-hours below {other.policy} ({mine.gpu_hours:.1f} vs "
                    f"{other.gpu_hours:.1f})",
                    mine.gpu_hours < other.gpu_hours,
                )
            )
        for text, ok in checks:
            lines.append(f"{trace}: {'met' if ok else 'MISSED'}: {text}")
    return lines


def plot(results: Sequence[fleet.Result], directory: pathlib.Path) -> list[pathlib.Path]:
    """One PNG per trace: replicas (top) and waiting requests (bottom) over time, per policy."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    written = []
    for trace in dict.fromkeys(r.trace for r in results):
        runs = [r for r in results if r.trace == trace and not r.reference]
        figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(10, 6), sharex=True)
        for run in runs:
            hours = [i * run.series.step / 3600 for i in range(len(run.series.replicas))]
            style = {"linestyle": "--", "color": "black"} if run.policy == "oracle" else {}
            top.plot(hours, run.series.replicas, label=run.policy, linewidth=1.2, **style)
            bottom.plot(hours, run.series.waiting, label=run.policy, linewidth=1.0, **style)
        top.set_ylabel("replicas (with GPU)")
        top.set_title(f"{trace} trace: replicas and queue per policy")
        top.legend(loc="upper right", fontsize="small")
        bottom.set_ylabel("waiting requests")
        bottom.set_yscale("symlog", linthresh=10)
        bottom.set_xlabel("hours")
        figure.tight_layout()
        path = directory / f"autoscale-{trace}.png"
        figure.savefig(path, dpi=90)
        pyplot.close(figure)
        written.append(path)
    return written
