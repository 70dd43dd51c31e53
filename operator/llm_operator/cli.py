"""The `llm-operator` command: run, render, plan, crds and dev."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from llm_operator import errors, guardrail_defaults, metrics, pricing, render
from llm_operator.api import crd
from llm_operator.builders import common
from llm_operator.planning import report


def _guardrail_defaults(args: argparse.Namespace) -> dict[str, Any] | None:
    """The --guardrail-defaults file, validated; None (after saying why) when it is bad."""
    if args.guardrail_defaults is None:
        return {}
    try:
        return guardrail_defaults.load(args.guardrail_defaults)
    except (OSError, ValueError) as exc:
        print(f"--guardrail-defaults: {exc}", file=sys.stderr)
        return None


def _render(args: argparse.Namespace) -> int:
    defaults = _guardrail_defaults(args)
    if defaults is None:
        return 2
    options = common.Options(
        gateway_image=args.gateway_image,
        runbook_url=args.runbook_url,
        guardrail_defaults=defaults,
    )
    objects = []
    failed = False
    for path in args.filename:
        if path == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            try:
                text, source = pathlib.Path(path).read_text(encoding="utf-8"), path
            except OSError as exc:
                print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
                failed = True
                continue
        try:
            documents = render.load_documents(text, source)
            objects += render.render_objects(
                documents, source, options, namespace=args.namespace, owner_uid=args.owner_uid
            )
        except errors.RenderError as exc:
            for line in exc.lines:
                print(line, file=sys.stderr)
            failed = True
    if failed:
        return 1
    render.dump(objects, sys.stdout)
    return 0


def _plan(args: argparse.Namespace) -> int:
    failed = False
    for path in args.filename:
        try:
            text = sys.stdin.read() if path == "-" else pathlib.Path(path).read_text("utf-8")
            source = "<stdin>" if path == "-" else path
            documents = render.load_documents(text, source)
            for _, target in render.load_targets(documents, source):
                table, refused = report.render(f"{source} {target.name}", target.spec)
                sys.stdout.write(table + "\n")
                failed = failed or refused
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            failed = True
        except errors.RenderError as exc:
            for line in exc.lines:
                print(line, file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _crds(_: argparse.Namespace) -> int:
    sys.stdout.write(crd.render_yaml())
    return 0


def _run(args: argparse.Namespace) -> int:
    from llm_operator import leader, runner  # imported here: kopf is slow to import

    if args.gpu_prices is not None:
        try:
            pricing.load(args.gpu_prices)
        except (OSError, ValueError) as exc:
            print(f"--gpu-prices: {exc}", file=sys.stderr)
            return 2
    defaults = _guardrail_defaults(args)
    if defaults is None:
        return 2
    config = runner.RunConfig(
        namespaces=tuple(args.namespace or ()),
        liveness_endpoint=args.liveness or None,
        leader_election=args.leader_election,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        lease_seconds=args.lease_seconds,
        renew_deadline_seconds=args.renew_deadline_seconds,
        retry_period_seconds=args.retry_period_seconds,
        resync_seconds=args.resync_seconds,
        gateway_image=args.gateway_image,
        runbook_url=args.runbook_url,
        kubeconfig=args.kubeconfig,
        metrics_port=args.metrics_port or None,
        metrics_host=args.metrics_host,
        gpu_prices=args.gpu_prices,
        prometheus_url=args.prometheus_url,
        guardrail_defaults=defaults,
        read_nodes=args.read_nodes,
    )
    if args.leader_election:
        try:
            leader.Timing(
                args.lease_seconds, args.renew_deadline_seconds, args.retry_period_seconds
            )
        except ValueError as exc:
            print(
                f"--lease-seconds/--renew-deadline-seconds/--retry-period-seconds: {exc}",
                file=sys.stderr,
            )
            return 2
    try:
        asyncio.run(runner.run(config))
    except KeyboardInterrupt:
        return 130
    except errors.LeadershipLostError as exc:
        logging.getLogger("llm_operator").error("%s; exiting so that a standby takes over", exc)
        return 1
    return 0


def _dev(args: argparse.Namespace) -> int:
    # The development cluster is not shipped: it lives in the checkout's tests/support.
    root = pathlib.Path(__file__).resolve().parents[2]
    if not (root / "tests" / "support" / "devcluster").is_dir():
        print(
            "llm-operator dev starts a local cluster from a source checkout of llm-operator "
            f"(tests/support/devcluster); none found at {root}",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(root))
    main: Callable[[list[str]], int] = importlib.import_module(
        "tests.support.devcluster.__main__"
    ).main
    return main(args.rest)


def _runbook_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--runbook-url",
        default=common.DEFAULT_RUNBOOK_URL,
        help="page of the alerts' runbooks; each alert links to its #section",
    )


def parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for the docs and the tests."""
    top = argparse.ArgumentParser(
        prog="llm-operator", description="Serve LLMs on Kubernetes with vLLM."
    )
    top.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = top.add_subparsers(dest="command", required=True)

    p_render = sub.add_parser("render", help="print the children of LLMDeployment files as YAML")
    p_render.add_argument(
        "-f", "--filename", action="append", required=True, help="file to render ('-' = stdin)"
    )
    p_render.add_argument("-n", "--namespace", default="default", help="namespace if unset")
    p_render.add_argument("--owner-uid", help="add ownerReferences to this LLMDeployment UID")
    p_render.add_argument(
        "--gateway-image", default=common.DEFAULT_GATEWAY_IMAGE, help="gateway sidecar image"
    )
    _runbook_argument(p_render)
    p_render.add_argument(
        "--guardrail-defaults",
        type=pathlib.Path,
        help="JSON or YAML file with the installation's default guardrail policy "
        "(spec.guardrails keys but enabled; what a spec leaves out is taken from it)",
    )
    p_render.set_defaults(func=_render)

    p_plan = sub.add_parser(
        "plan", help="print the GPU memory plan of LLMDeployment files (exit 1 if refused)"
    )
    p_plan.add_argument(
        "-f", "--filename", action="append", required=True, help="file to plan ('-' = stdin)"
    )
    p_plan.set_defaults(func=_plan)

    p_crds = sub.add_parser("crds", help="print the LLMDeployment CRD")
    p_crds.set_defaults(func=_crds)

    p_run = sub.add_parser("run", help="run the operator")
    p_run.add_argument(
        "-n", "--namespace", action="append", help="watch this namespace (repeatable); default all"
    )
    p_run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL ('' to disable)",
    )
    p_run.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="hold a Lease so only one replica is active",
    )
    p_run.add_argument(
        "--read-nodes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="list nodes to tell in status when no node has enough GPUs (needs RBAC to list "
        "nodes; --no-read-nodes when it has none)",
    )
    p_run.add_argument(
        "--lease-name", default="llm-operator-leader", help="name of the leader election Lease"
    )
    p_run.add_argument("--lease-namespace", default="default", help="namespace of the Lease")
    p_run.add_argument(
        "--lease-seconds",
        type=float,
        default=15.0,
        help="a standby takes over after this long without a renewal (default 15)",
    )
    p_run.add_argument(
        "--renew-deadline-seconds",
        type=float,
        default=10.0,
        help="the leader stops acting after this long without a renewal; shorter than the "
        "lease (default 10)",
    )
    p_run.add_argument(
        "--retry-period-seconds",
        type=float,
        default=2.0,
        help="how often the leader renews and a standby retries (default 2)",
    )
    p_run.add_argument(
        "--resync-seconds", type=float, default=30.0, help="period of the drift-undoing resync"
    )
    p_run.add_argument(
        "--gateway-image", default=common.DEFAULT_GATEWAY_IMAGE, help="default gateway image"
    )
    p_run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or $KUBECONFIG)")
    p_run.add_argument(
        "--metrics-port",
        type=int,
        default=metrics.DEFAULT_PORT,
        help=f"serve Prometheus metrics on this port at {metrics.PATH} "
        f"(default {metrics.DEFAULT_PORT}; 0 disables)",
    )
    p_run.add_argument(
        "--metrics-host",
        default=metrics.DEFAULT_HOST,
        help="address of the metrics server (default all)",
    )
    p_run.add_argument(
        "--gpu-prices",
        type=pathlib.Path,
        help="YAML price table (dollars per GPU-hour by GPU type) for the cost metrics; "
        "default: the shipped placeholder table",
    )
    p_run.add_argument(
        "--prometheus-url",
        default=os.environ.get("LLM_OPERATOR_PROMETHEUS_URL", ""),
        help="Prometheus the builtin autoscaler reads its signal from when an LLMDeployment "
        "names none (default $LLM_OPERATOR_PROMETHEUS_URL; unset: the pods' own metrics "
        "endpoints)",
    )
    _runbook_argument(p_run)
    p_run.add_argument(
        "--guardrail-defaults",
        type=pathlib.Path,
        help="JSON or YAML file with the installation's default guardrail policy "
        "(spec.guardrails keys but enabled; what a spec leaves out is taken from it)",
    )
    p_run.set_defaults(func=_run)

    p_dev = sub.add_parser(
        "dev", help="local control plane with simulated GPU nodes: up|down|status"
    )
    p_dev.add_argument("rest", nargs=argparse.REMAINDER, help="up, down or status and options")
    p_dev.set_defaults(func=_dev)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llm-operator` console script."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
