"""Command line of the gateway sidecar: `llm-serving gateway` parses its flags here and serves.

`main(argv)` reads the flags into `config.Settings`, switches logging to JSON
lines, and serves (`app.Service`) until SIGINT or SIGTERM; then it stops listening
and gives the requests in progress up to `--shutdown-timeout` seconds to finish. The
event loop is uvloop's when it is installed (the `serving` extra brings it;
`--event-loop asyncio` opts out), which makes each request's socket work cheaper.
It returns a process exit code: 0 after a clean stop, 2 when the engine URL is
unusable or the policy file given at start-up is invalid (the container then fails
visibly instead of serving without the guardrails it was given). The log level is
`--log-level`, else the environment's `LOG_LEVEL` (which the operator sets from
`spec.gateway.logLevel`), else info.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import pathlib
import signal
import sys

from llm_serving.gateway import app, config, jsonlog

logger = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")


def parser() -> argparse.ArgumentParser:
    """The `llm-serving gateway` argument parser."""
    p = argparse.ArgumentParser(
        prog="llm-serving gateway",
        description="Guardrail gateway: an OpenAI-compatible reverse proxy in front of vLLM.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument(
        "--upstream",
        default="http://127.0.0.1:8000",
        help="base URL of the engine (default http://127.0.0.1:8000)",
    )
    p.add_argument(
        "--policy-file",
        type=pathlib.Path,
        help="guardrail policy (JSON or YAML, the CRD's spec.guardrails); reloaded when it "
        "changes. Without it every default check is on.",
    )
    p.add_argument(
        "--api-keys-dir",
        type=pathlib.Path,
        help="mounted Secret: one file per key id holding the SHA-256 hex digest of the key",
    )
    p.add_argument(
        "--tokenizer",
        type=pathlib.Path,
        help="the model's tokenizer.json for exact prompt token counts (estimated without it)",
    )
    p.add_argument("--model-name", help="served model name, for metrics when requests omit it")
    p.add_argument(
        "--upstream-connections",
        type=int,
        default=512,
        help="size of the connection pool to the engine (default 512)",
    )
    p.add_argument(
        "--check-workers",
        type=int,
        default=None,
        help="processes that check long texts (default: one per CPU of the pod; 0: none, "
        "every check runs on the event loop)",
    )
    p.add_argument(
        "--offload-chars",
        type=int,
        default=config.Settings.offload_chars,
        help="requests and answers with more characters of text than this are checked by the "
        f"workers (default {config.Settings.offload_chars})",
    )
    p.add_argument(
        "--check-timeout",
        type=float,
        default=config.Settings.check_timeout,
        help="seconds a worker may spend on one request's checks before it is replaced and the "
        f"request answered 503 (default {config.Settings.check_timeout:g})",
    )
    p.add_argument(
        "--event-loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="event loop: uvloop when installed (auto, the default), or the standard one",
    )
    for flag, field, what in (
        ("--head-timeout", "head_timeout", "a request head may take to arrive (and a keep-alive "
         "connection may stay idle)"),
        ("--body-timeout", "body_timeout", "a request body may take to arrive whole (408 past it)"),
        ("--write-timeout", "write_timeout", "one write of a stream may wait for a client that "
         "does not read (the stream is then dropped)"),
        ("--shutdown-timeout", "shutdown_timeout", "the requests in progress get to finish on "
         "SIGTERM (a stream may be cut)"),
    ):  # fmt: skip
        default = getattr(config.Settings, field)
        p.add_argument(
            flag, type=float, default=default, help=f"seconds {what} (default {default:g})"
        )
    p.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help="log level (default: the environment's LOG_LEVEL, else info)",
    )
    return p


def settings_from(args: argparse.Namespace) -> config.Settings:
    """Settings from parsed arguments."""
    return config.Settings(
        host=args.host,
        port=args.port,
        upstream=args.upstream,
        policy_file=args.policy_file,
        api_keys_dir=args.api_keys_dir,
        tokenizer=args.tokenizer,
        model_name=args.model_name,
        upstream_connections=args.upstream_connections,
        check_workers=args.check_workers,
        offload_chars=args.offload_chars,
        check_timeout=args.check_timeout,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        write_timeout=args.write_timeout,
        shutdown_timeout=args.shutdown_timeout,
    )


def log_level(args: argparse.Namespace) -> str:
    """`--log-level`, else the environment's `LOG_LEVEL` (any case), else info.

    Raises `ValueError` for a `LOG_LEVEL` that is not one of `LOG_LEVELS`.
    """
    if args.log_level is not None:
        return str(args.log_level)
    level = os.environ.get("LOG_LEVEL", "info").strip().lower() or "info"
    if level not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return level


def event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop of `kind` ("auto": uvloop when it is installed, else asyncio's)."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
            logger.info("uvloop is not installed; using the asyncio event loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _freeze_startup_objects() -> None:
    """Keep what start-up loaded (models, vocabularies: ~10^5 objects) out of collections.

    They live as long as the process; without this, each full collection walks them all
    and stalls whichever request is running for tens of milliseconds.
    """
    gc.collect()
    gc.freeze()


async def serve(settings: config.Settings) -> int:
    """Serve until SIGINT or SIGTERM, then stop gracefully; returns the exit code."""
    try:
        service = await app.Service.start(settings)
    except (ValueError, config.PolicyError) as exc:  # an unusable engine URL or policy file
        logger.error("cannot start: %s", exc)
        return 2
    _freeze_startup_objects()
    logger.info(
        "gateway listening on %s:%d, engine %s", settings.host, service.port, settings.upstream
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        logger.info("stopping: finishing the requests in progress")
    finally:
        await service.stop()
    return 0


def main(argv: list[str]) -> int:
    """Run the gateway until stopped; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        level = log_level(args)
    except ValueError as exc:
        sys.stderr.write(f"llm-serving gateway: {exc}\n")
        return 2
    # Small matrices (toxicity classifier, embedder) only lose from a BLAS thread pool.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    jsonlog.configure(level.upper())
    settings = settings_from(args)
    loop = event_loop(args.event_loop)
    try:
        return loop.run_until_complete(serve(settings))
    finally:
        loop.close()
