"""`python -m tests.support.devcluster up | down | status` (also `llm-operator dev`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tests.support.devcluster import cluster, model

# --------------------------------------------------------------------------- CLI


def _print_status(st: model.ClusterStatus) -> None:
    print(f"cluster:    {st.name} ({'up' if st.up else 'down'})")
    print(f"state dir:  {st.state_dir}")
    if st.server:
        print(f"server:     {st.server}")
    if st.kubeconfig:
        print(f"kubeconfig: {st.kubeconfig}")
    if not st.components:
        print("components: none (not started)")
        return
    print(f"{'COMPONENT':<25} {'PID':>8}  {'RUNNING':<8} {'HEALTHY':<8} DETAIL")
    for c in st.components:
        detail = c.detail.splitlines()[0][:60] if c.detail else ""
        pid = str(c.pid) if c.pid is not None else "-"
        print(f"{c.name:<25} {pid:>8}  {c.running!s:<8} {c.healthy!s:<8} {detail}")


def build_parser(prog: str = "llm-operator dev") -> argparse.ArgumentParser:
    """The `up | down | status` command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A local Kubernetes control plane with simulated GPU nodes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--name", default=model.DEFAULT_NAME, help="cluster name (default: %(default)s)"
        )
        p.add_argument(
            "--cache-dir",
            type=Path,
            default=None,
            help="cache root (default: $LLM_OPERATOR_CACHE or ~/.cache/llm-operator)",
        )

    p_up = sub.add_parser("up", help="start the cluster (reuse it if already up)")
    common(p_up)
    p_up.add_argument("--nodes", type=int, default=model.DEFAULT_NODES, help="simulated GPU nodes")
    p_up.add_argument(
        "--gpus-per-node",
        type=int,
        default=model.DEFAULT_GPUS_PER_NODE,
        help="nvidia.com/gpu per node",
    )
    p_up.add_argument(
        "--gpu-product", default=model.DEFAULT_GPU_PRODUCT, help="nvidia.com/gpu.product label"
    )
    p_up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait per step")
    p_down = sub.add_parser("down", help="stop every process of the cluster")
    common(p_down)
    p_down.add_argument(
        "--keep-state", action="store_true", help="keep the state directory (logs, certificates)"
    )
    p_status = sub.add_parser("status", help="show model.components, pids, health and kubeconfig")
    common(p_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `up`, `down` or `status`; return the exit code."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "up":
            config = model.ClusterConfig(
                name=args.name,
                nodes=args.nodes,
                gpus_per_node=args.gpus_per_node,
                gpu_product=args.gpu_product,
                cache_dir=args.cache_dir,
                timeout=args.timeout,
            )
            running = cluster.up(config)
            print(f"cluster {running.name} is up: {running.server}")
            print(f"export KUBECONFIG={running.kubeconfig}")
            return 0
        config = model.ClusterConfig(name=args.name, cache_dir=args.cache_dir)
        if args.command == "down":
            cluster.down(config, keep_state=args.keep_state)
            print(f"cluster {config.name} is down")
            return 0
        st = cluster.status(config)
        _print_status(st)
        return 0 if st.up else 1
    except (model.ClusterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
