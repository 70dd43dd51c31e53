"""The policy in force: everything derived from the policy file, swapped whole on reload.

A `Runtime` holds the guards, the rate limiter, the semantic cache and its embedder
built from one `policy.GuardrailPolicy`; it is immutable, and `Policies.current` is
replaced in one assignment, so a request that took it at its start sees one policy
to its end. `Policies` loads the policy file and the API key folder at start-up,
watches both (`config.Watcher`) and rebuilds on change: a new policy that fails to
parse, validate or build is refused and the previous one stays (counted in
`llm_gateway_policy_reloads_total{result="error"}`). State that must survive a
reload with the same settings (the rate limiter's buckets, the cache's entries, the
loaded embedder) is carried over.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import dataclasses
import logging
from typing import Any

from llm_serving import policy
from llm_serving.gateway import auth, cache, config, embed, metrics, upstream
from llm_serving.guardrails import injection, pipeline, tokens

logger = logging.getLogger(__name__)

#: Seconds between two sweeps of expired cache entries.
SWEEP_INTERVAL = 30.0


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Everything derived from one policy; replaced whole when the policy file changes."""

    policy: policy.GuardrailPolicy
    input_guard: pipeline.InputGuard | None
    output_guard: pipeline.OutputGuard | None
    limiter: auth.RateLimiter | None
    cache: cache.SemanticCache | None
    embedder: embed.Embedder | None


class Policies:
    """Loads, watches and rebuilds the policy and the API keys of one gateway process."""

    def __init__(
        self,
        settings: config.Settings,
        registry: metrics.Metrics,
        engine: upstream.Upstream,
        counter: tokens.TokenCounter,
    ) -> None:
        self.settings = settings
        self.metrics = registry
        self.engine = engine
        self.tokens = counter
        self.keys = auth.KeyStore()
        self._current: Runtime | None = None
        self._watcher = config.Watcher(settings.poll_interval)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def current(self) -> Runtime:
        """The policy in force."""
        if self._current is None:
            raise RuntimeError("gateway used before startup")
        return self._current

    def build(self, new: policy.GuardrailPolicy, old: Runtime | None) -> Runtime:
        """Construct guards, limiter and cache for a policy (runs on a worker thread)."""
        input_guard = output_guard = None
        if new.enabled:
            input_guard = pipeline.InputGuard(new.input, self.tokens)
            output_guard = pipeline.OutputGuard(new.output)
        keys = new.api_keys
        limiter = None
        if keys.enabled and (keys.requests_per_minute or keys.tokens_per_minute):
            if (
                old is not None
                and old.limiter is not None
                and old.limiter.same_limits(keys.requests_per_minute, keys.tokens_per_minute)
            ):
                limiter = old.limiter
            else:
                limiter = auth.RateLimiter(keys.requests_per_minute, keys.tokens_per_minute)
        response_cache: cache.SemanticCache | None = None
        embedder: embed.Embedder | None = None
        if new.cache.enabled:
            if old is not None and old.cache is not None and old.policy.cache == new.cache:
                response_cache, embedder = old.cache, old.embedder
            else:
                response_cache = cache.SemanticCache(
                    new.cache.max_entries,
                    new.cache.ttl_seconds,
                    new.cache.similarity_threshold,
                    on_evict=lambda reason: self.metrics.cache_evictions.labels(reason).inc(),
                )
                if new.cache.embedder is policy.EmbedderKind.OPENAI:
                    embedder = embed.OpenAIEmbedder(self.engine.session, new.cache.embedder_url)
                elif old is not None and isinstance(old.embedder, embed.BuiltinEmbedder):
                    embedder = old.embedder
                else:
                    embedder = embed.BuiltinEmbedder()
        return Runtime(new, input_guard, output_guard, limiter, response_cache, embedder)

    async def apply(self, new: policy.GuardrailPolicy) -> None:
        """Build and switch to a new policy; the old one stays if building fails."""
        loop = asyncio.get_running_loop()
        runtime = await loop.run_in_executor(None, self.build, new, self._current)
        self._current = runtime
        self.metrics.cache_entries.set(len(runtime.cache) if runtime.cache else 0)
        if runtime.embedder is not None:
            self._spawn(self._warm_up(runtime.embedder))

    async def _warm_up(self, embedder: embed.Embedder) -> None:
        try:
            await embedder.warm_up()
        except embed.EmbedderError as exc:
            self.metrics.embedder_errors.inc()
            logger.warning("embedder unavailable, cache uses exact matching only: %s", exc)

    async def reload(self) -> None:
        """Re-read the policy file; keep the current policy if the new one is invalid."""
        path = self.settings.policy_file
        if path is None:
            return
        try:
            loop = asyncio.get_running_loop()
            new = await loop.run_in_executor(None, config.read_policy, path)
            await self.apply(new)
        except Exception as exc:
            self.metrics.policy_reloads.labels("error").inc()
            logger.error(
                "policy %s rejected, keeping the previous one: %s",
                path,
                exc if isinstance(exc, config.PolicyError) else type(exc).__name__,
            )
            if not isinstance(exc, config.PolicyError):
                logger.debug("policy build failure", exc_info=True)
            return
        self.metrics.policy_reloads.labels("success").inc()
        self.metrics.policy_last_reload.set_to_current_time()
        logger.info("policy loaded from %s (guardrails %s)", path, new.enabled)

    async def reload_keys(self) -> None:
        """Re-read the mounted API key folder."""
        folder = self.settings.api_keys_dir
        if folder is None:
            return
        loop = asyncio.get_running_loop()
        self.keys = await loop.run_in_executor(None, auth.KeyStore.from_dir, folder)
        self.metrics.api_keys_loaded.set(len(self.keys))
        logger.info("%d API keys loaded", len(self.keys))

    def _spawn(self, coro: collections.abc.Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            response_cache = self.current.cache
            if response_cache is not None:
                response_cache.sweep()
                self.metrics.cache_entries.set(len(response_cache))

    async def start(self) -> None:
        """Load the policy and keys and start watching them (raises `config.PolicyError`)."""
        if self.settings.policy_file is not None:
            try:
                initial = config.read_policy(self.settings.policy_file)
            except config.PolicyError:
                self.metrics.policy_reloads.labels("error").inc()
                raise
            self.metrics.policy_reloads.labels("success").inc()
            self.metrics.policy_last_reload.set_to_current_time()
            self._watcher.add(self.settings.policy_file, self.reload)
        else:
            initial = config.default_policy()
            logger.info("no policy file: default guardrails on")
        if injection.compiled():
            logger.info("prompt-injection scorer: compiled loops")
        else:
            logger.warning(
                "prompt-injection scorer: plain Python (the compiled module was not built); "
                "same verdicts, several times the CPU per prompt"
            )
        await self.apply(initial)
        if self.settings.api_keys_dir is not None:
            await self.reload_keys()
            self._watcher.add(self.settings.api_keys_dir, self.reload_keys)
        self._spawn(self._watcher.run())
        self._spawn(self._sweep())

    async def stop(self) -> None:
        """Stop the watch and the background tasks."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
