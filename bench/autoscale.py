"""Benchmark: the builtin autoscaler against KEDA-like, KubeAI-like and oracle policies on traces.

A trace-driven discrete-event simulation of a fleet of GPU replicas (`fleetsim`):
each replica is sized with the engine simulator's capacity model, takes a cold
start drawn from 60-300 s, and serves a FIFO queue of requests that arrive as a
Poisson process around the trace's rate. Three traces (bursty, diurnal, a sudden
10x spike) and four policies in one run: the operator's builtin decision code
(`llm_operator.autoscaling.decision`, imported, not copied), a KEDA-default-like
policy, a KubeAI-like one and an oracle with perfect foresight. Every policy gets
the same arrivals and the same cold starts.

Two reference rows, not competitors (`fleetsim.reference`), say what a policy that
does not know the future can reach: instant-surge (the present rate known exactly,
every allowed replica started the second it rises) and reactive-oracle (the present
rate known exactly, held for the scale-down window, nothing more).

It prints a table per trace and policy: the share of requests whose queue wait is
within the SLO (2 s by default), the p95 wait, GPU-hours (and their ratio to the
oracle's), and scale events; then the goals (builtin >= 99% within the SLO, at most
1.15x the oracle's GPU-hours, better than both baselines on both) with met or
MISSED. `--seeds N` runs N seeds and prints the mean and range of each measure and
how often each goal was met. `--json` prints one JSON object per line instead (keys
trace, policy, slo_attainment, gpu_hours, scale_events, reference). `--plots DIR`
writes one PNG per trace (replicas and queue over time per policy);
`make bench-autoscale` writes them to docs/. A run of one seed simulates 31 hours of
traffic per policy and takes about 15 s.

    .venv/bin/python bench/autoscale.py                  # table and goals
    .venv/bin/python bench/autoscale.py --json           # JSON lines
    .venv/bin/python bench/autoscale.py --quick          # traces a quarter as long
    .venv/bin/python bench/autoscale.py --plots docs     # and the PNG plots
    .venv/bin/python bench/autoscale.py --seeds 5        # and the spread over 5 seeds
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from fleetsim import fleet, model, oracle, policies, reference, report, traces

from llm_operator.api import v1alpha1

MAX_REPLICAS = 40
#: Simulated before each trace at its first rate, unmeasured, so every policy starts with
#: the history it would have in a running cluster (a fresh HPA would scale to its minimum
#: on its first empty reading).
WARMUP = 1800


def builtin_spec(target: float) -> v1alpha1.Autoscaling:
    """The spec.autoscaling the builtin policy runs with: the defaults, on waiting + running."""
    return v1alpha1.Autoscaling.model_validate(
        {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": MAX_REPLICAS,
            "metric": "queueDepth",
            "includeRunning": True,
            "targetPerReplica": target,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON lines, not the table")
    parser.add_argument("--quick", action="store_true", help="traces a quarter as long")
    parser.add_argument("--plots", type=pathlib.Path, help="write PNG plots to this directory")
    parser.add_argument("--seed", type=int, default=1, help="seed of traces and cold starts")
    parser.add_argument("--slo", type=float, default=2.0, help="queue wait SLO in seconds")
    parser.add_argument(
        "--target-fraction",
        type=float,
        default=0.8,
        help="target per replica as a fraction of the batch (max_num_seqs); every policy uses it",
    )
    parser.add_argument("--trace", action="append", help="run only these traces")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="also run the next seeds, to this many in all, and print the spread",
    )
    args = parser.parse_args(argv)

    replica = model.ReplicaModel()
    target = args.target_fraction * replica.slots
    spec = builtin_spec(target)
    if not args.json:
        print(
            f"replica: {replica.slots} sequences, mean service {replica.mean_service:.1f} s at a "
            f"full batch, {replica.capacity:.2f} requests/s; cold start "
            f"{replica.cold_start[0]:g}-{replica.cold_start[1]:g} s; target {target:g} "
            f"(waiting + running) per replica; SLO: queue wait <= {args.slo:g} s"
        )
    results = run_seed(args.seed, args, replica, spec, target, verbose=not args.json)
    if args.json:
        print(report.json_lines(results))
    else:
        print()
        print(report.table(results))
        print()
        for line in report.goals(results):
            print(line)
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        for path in report.plot(results, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    if args.seeds > 1:
        by_seed = {args.seed: results}
        for seed in range(args.seed + 1, args.seed + args.seeds):
            print(f"  seed {seed}", file=sys.stderr)
            by_seed[seed] = run_seed(seed, args, replica, spec, target, verbose=False)
        print()
        print(report.spread(by_seed))
    return 0


def run_seed(
    seed: int,
    args: argparse.Namespace,
    replica: model.ReplicaModel,
    spec: v1alpha1.Autoscaling,
    target: float,
    verbose: bool,
) -> list[fleet.Result]:
    """Every policy on every chosen trace, with this seed's traces and cold starts."""
    hours_scale = 0.25 if args.quick else 1.0
    chosen = [
        t
        for t in traces.all_traces(replica.capacity, seed, hours_scale)
        if not args.trace or t.name in args.trace
    ]
    results: list[fleet.Result] = []
    for measured in chosen:
        trace = measured.with_warmup(WARMUP)
        arrivals = trace.arrivals(seed)
        the_oracle = oracle.Oracle(trace.rates, replica, None, 1, MAX_REPLICAS, slo=args.slo)
        initial = the_oracle.need[0]
        # The reference rows hold what the present rate needs at the target every policy
        # uses (the oracle's own sizing, Erlang C, holds less: it needs no margin).
        at_target = [
            min(MAX_REPLICAS, max(1, math.ceil(rate * replica.mean_service / target - 1e-9)))
            for rate in trace.rates
        ]
        builtin = policies.Builtin(spec)
        runs: list[fleet.Policy] = [
            builtin,
            policies.KedaLike(1, MAX_REPLICAS, target),
            policies.KubeAILike(1, MAX_REPLICAS, target),
            the_oracle,
            # Reference rows: the present rate known exactly, the future not at all.
            reference.InstantSurge(
                at_target, MAX_REPLICAS, builtin.policy.scale_down_stabilization
            ),
            reference.ReactiveOracle(at_target, builtin.policy.scale_down_stabilization),
        ]
        for policy in runs:
            cold_starts = fleet.ColdStarts(replica.cold_start, seed)
            if isinstance(policy, oracle.Oracle):
                # The oracle reads the run's cold starts through the fleet the run makes.
                policy.fleet = fleet.Fleet(replica, cold_starts)
            started = time.monotonic()
            result = run_one(trace, arrivals, policy, replica, cold_starts, initial, seed, args.slo)
            results.append(result)
            if verbose:
                print(
                    f"  {trace.name:8} {policy.name:12} {result.requests:8d} requests "
                    f"in {time.monotonic() - started:5.1f} s",
                    file=sys.stderr,
                )
    return results


def run_one(
    trace: traces.Trace,
    arrivals: list[float],
    policy: fleet.Policy,
    replica: model.ReplicaModel,
    cold_starts: fleet.ColdStarts,
    initial: int,
    seed: int,
    slo: float,
) -> fleet.Result:
    """One policy on one trace."""
    return fleet.run(
        trace.name,
        arrivals,
        trace.duration,
        policy,
        replica,
        cold_starts,
        initial,
        seed=seed,
        slo=slo,
        fleet_hook=policy.fleet if isinstance(policy, oracle.Oracle) else None,
        measure_from=WARMUP,
    )


if __name__ == "__main__":
    sys.exit(main())
