"""`llm-serving sim`: the simulator's command line, serving until interrupted."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from llm_serving.sim import engine as sim_engine
from llm_serving.sim import server as sim_server

logger = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    d = sim_engine.SimConfig()
    p = argparse.ArgumentParser(
        prog="llm-serving sim",
        description="A vLLM-compatible engine simulator: OpenAI routes, /health, /metrics "
        "with vLLM's metric names, and a capacity model so a queue builds under load.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--model", default=d.model, help="served model name (default: %(default)s)")
    p.add_argument(
        "--served-model-name",
        default=None,
        help="vLLM's spelling of the served model name; overrides --model when given",
    )
    p.add_argument(
        "--max-num-seqs",
        type=int,
        default=d.max_num_seqs,
        help="sequences decoded at once; more wait in a FIFO queue (default: %(default)s)",
    )
    p.add_argument(
        "--prefill-tokens-per-s",
        type=float,
        default=d.prefill_tokens_per_s,
        help="prompt tokens processed per second per sequence (default: %(default)s)",
    )
    p.add_argument(
        "--decode-tokens-per-s",
        type=float,
        default=d.decode_tokens_per_s,
        help="tokens per second of one sequence decoding alone (default: %(default)s)",
    )
    p.add_argument(
        "--decode-slowdown",
        type=float,
        default=d.decode_slowdown,
        help="per-token time grows by this fraction per extra running sequence "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-model-len",
        type=int,
        default=d.max_model_len,
        help="context length: prompt plus output tokens (default: %(default)s)",
    )
    p.add_argument(
        "--kv-cache-tokens",
        type=int,
        default=None,
        help="KV cache capacity in tokens (default: max-num-seqs x max-model-len)",
    )
    p.add_argument(
        "--output-tokens",
        type=int,
        default=d.output_tokens,
        help="tokens the simulated model writes before it stops by itself "
        "(finish_reason stop) unless max_tokens is lower (default: %(default)s)",
    )
    p.add_argument(
        "--startup-delay-s",
        type=float,
        default=d.startup_delay_s,
        help="seconds /health answers 503 after start (default: %(default)s)",
    )
    p.add_argument(
        "--fail-rate",
        type=float,
        default=d.fail_rate,
        help="fraction of requests that fail: 500, or a dropped stream (default: %(default)s)",
    )
    p.add_argument(
        "--embedding-dim",
        type=int,
        default=d.embedding_dim,
        help="length of /v1/embeddings vectors (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> sim_engine.SimConfig:
    """A SimConfig from parsed command-line arguments."""
    return sim_engine.SimConfig(
        model=args.served_model_name or args.model,
        max_num_seqs=args.max_num_seqs,
        prefill_tokens_per_s=args.prefill_tokens_per_s,
        decode_tokens_per_s=args.decode_tokens_per_s,
        decode_slowdown=args.decode_slowdown,
        max_model_len=args.max_model_len,
        kv_cache_tokens=args.kv_cache_tokens,
        output_tokens=args.output_tokens,
        startup_delay_s=args.startup_delay_s,
        fail_rate=args.fail_rate,
        seed=args.seed,
        embedding_dim=args.embedding_dim,
        root=args.model if args.served_model_name else None,
    )


def main(argv: list[str]) -> int:
    """`llm-serving sim`: serve until interrupted."""
    command_line = parser()
    args = command_line.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except ValueError as exc:
        command_line.error(str(exc))
    logger.info(
        "serving %s on http://%s:%d (max_num_seqs=%d)",
        config.model,
        args.host,
        args.port,
        config.max_num_seqs,
    )
    web.run_app(
        sim_server.build_app(config),
        host=args.host,
        port=args.port,
        handler_cancellation=True,
        print=None,
    )
    return 0
