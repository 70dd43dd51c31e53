"""The guardrail gateway sidecar: an OpenAI-compatible reverse proxy in front of vLLM.

`app` holds the request handlers and `Service`, `httpd` the HTTP/1.1 server they
run behind, `upstream` the one client to the engine, `config` the policy file and
its hot reload, `auth` API keys and rate limits, `cache` and `embed` the semantic
cache, `sse` the streamed output checks, `metrics` every Prometheus metric, `errors`
the OpenAI-style errors and `jsonlog` the JSON log lines. `main(argv)` is the
`llm-serving gateway` command.
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Entry point of `llm-serving gateway`; see `server.main`."""
    # Imported here, so that importing a submodule (say `embed`) stays light.
    from llm_serving.gateway import server

    return server.main(argv)
