"""A vLLM-compatible engine simulator (`llm-serving sim`) for tests, demos and load tests.

It speaks vLLM's OpenAI-compatible HTTP API and exposes vLLM's `vllm:*` metrics,
with a capacity model (a bounded batch, a FIFO queue, prefill and decode rates,
a start-up delay and fault injection) so that a queue builds under load as it
would on a GPU. `server.build_app(config)` gives the aiohttp application (its
routes); `protocol` parses requests and shapes errors as vLLM does; `generation`
writes the answers, whole or streamed; `cli.main(argv)` is the command line;
`engine` holds the capacity model, `metrics` every metric object, `text` the token
estimate and the deterministic pseudo-words.
"""
