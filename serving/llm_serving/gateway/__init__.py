"""The guardrail gateway sidecar: an OpenAI-compatible reverse proxy in front of vLLM.

`app` holds the routes, the request layer and `Service`; `connections` aiohttp's
server as the gateway configures it; `proxy` the checked flow of a chat or
completion request (`validate` and `texts` at its edge, `checks` and `workers` for
the guardrails, `sse` and `pump` for streams), `runtime` the policy in force and
its hot reload, `upstream` the one client to the engine, `config` the settings and
the policy file, `auth` API keys and rate limits, `cache` and `embed` the semantic
cache, `metrics` every Prometheus metric, `errors` the OpenAI-style errors and
`jsonlog` the JSON log lines. `main(argv)` is the
`llm-serving gateway` command.
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Entry point of `llm-serving gateway`; see `server.main`."""
    # Imported here, so that importing a submodule (say `embed`) stays light.
    from llm_serving.gateway import server

    return server.main(argv)
