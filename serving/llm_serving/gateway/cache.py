"""The semantic response cache: exact match, then embedding similarity, with TTL and LRU bounds.

A request is cacheable when it is not streamed and is deterministic (temperature 0),
unless the policy opts non-deterministic requests in. Its exact key is a SHA-256 of
the route and the whole request body except the streaming switches, so it covers the
model, every message and every sampling parameter (temperature, top_p, max_tokens,
stop, seed, ...), known or not. For similarity, entries are grouped by a context key:
the same hash with the last message's text (chat) or the prompt (completions) left
out. Only entries with the same context, that is the same model, parameters and
earlier conversation, are compared, by the cosine similarity of the embeddings of
that final text, against `similarityThreshold`. Each group keeps its vectors in one
matrix, so a lookup is a single matrix-vector product.

Entries expire `ttlSeconds` after they were stored, and the least recently used entry
is evicted beyond `maxEntries`. Streaming requests are not served from nor stored in
the cache (a replay would change the stream's timing and chunking); that is a
documented limitation for a first version.

The cache sees requests after input guardrails (so redacted text is what is
hashed and embedded) and stores responses after output guardrails.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from llm_serving.gateway import embed

#: Body fields that change only how the answer is delivered, not what it is.
_DELIVERY_FIELDS = frozenset({"stream", "stream_options"})


@dataclasses.dataclass(frozen=True)
class RequestKey:
    """How one request is looked up: exact hash, context hash, and the text to embed."""

    exact: str
    context: str
    text: str | None


@dataclasses.dataclass(frozen=True)
class CachedResponse:
    """A stored response, already through the output guardrails."""

    body: bytes
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclasses.dataclass
class Entry:
    """One cache entry."""

    key: str
    context: str
    vector: embed.Vector | None
    response: CachedResponse
    created: float


def _digest(route: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(
        [route, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text_of(content: object) -> str | None:
    """Plain text of a message content: a string, or a list of only text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            text = part.get("text")
            if not isinstance(text, str):
                return None
            texts.append(text)
        return "\n".join(texts)
    return None


def is_deterministic(body: dict[str, Any]) -> bool:
    """Temperature 0 (greedy decoding); a missing temperature means the engine's default."""
    temperature = body.get("temperature")
    return (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and temperature == 0
    )


def request_key(
    route: str, body: dict[str, Any], cache_non_deterministic: bool
) -> RequestKey | None:
    """The cache key of a request, or None if the request must not use the cache."""
    if body.get("stream") is True:
        return None
    if not cache_non_deterministic and not is_deterministic(body):
        return None
    relevant = {k: v for k, v in body.items() if k not in _DELIVERY_FIELDS}
    exact = _digest(route, relevant)
    text: str | None = None
    context_body = dict(relevant)
    messages = relevant.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        last = messages[-1]
        text = _text_of(last.get("content"))
        if text is not None:
            context_body["messages"] = [*messages[:-1], {**last, "content": None}]
    elif isinstance(relevant.get("prompt"), str):
        text = relevant["prompt"]
        context_body["prompt"] = None
    if text is None:
        return RequestKey(exact, exact, None)
    return RequestKey(exact, _digest(route, context_body), text)


class _Group:
    """The embeddings of the entries sharing one context, as rows of a matrix."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((4, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}

    def add(self, key: str, vector: embed.Vector) -> None:
        if key in self.rows:
            self.matrix[self.rows[key]] = vector
            return
        if len(self.keys) == self.matrix.shape[0]:
            grown = np.zeros((self.matrix.shape[0] * 2, self.matrix.shape[1]), dtype=np.float32)
            grown[: len(self.keys)] = self.matrix
            self.matrix = grown
        row = len(self.keys)
        self.matrix[row] = vector
        self.keys.append(key)
        self.rows[key] = row

    def remove(self, key: str) -> None:
        row = self.rows.pop(key, None)
        if row is None:
            return
        last = len(self.keys) - 1
        if row != last:
            moved = self.keys[last]
            self.matrix[row] = self.matrix[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.keys.pop()

    def best(self, vector: embed.Vector) -> tuple[str, float] | None:
        if not self.keys:
            return None
        scores = self.matrix[: len(self.keys)] @ vector
        row = int(np.argmax(scores))
        return self.keys[row], float(scores[row])


class SemanticCache:
    """Bounded response cache with exact and similarity lookup."""

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        similarity_threshold: float,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.similarity_threshold = similarity_threshold
        self._clock = clock
        self._on_evict = on_evict
        self._entries: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self._groups: dict[str, _Group] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _expired(self, entry: Entry, now: float) -> bool:
        return now - entry.created >= self.ttl_seconds

    def _remove(self, key: str, reason: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        group = self._groups.get(entry.context)
        if group is not None:
            group.remove(key)
            if not group.keys:
                del self._groups[entry.context]
        if self._on_evict is not None and reason:
            self._on_evict(reason)

    def _touch(self, entry: Entry, now: float) -> Entry | None:
        if self._expired(entry, now):
            self._remove(entry.key, "ttl")
            return None
        self._entries.move_to_end(entry.key)
        return entry

    def get_exact(self, key: str) -> Entry | None:
        """The live entry stored under exactly this key."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return self._touch(entry, self._clock())

    def get_similar(self, context: str, vector: embed.Vector) -> tuple[Entry, float] | None:
        """The most similar live entry in the same context, if at or above the threshold."""
        group = self._groups.get(context)
        if group is None or group.matrix.shape[1] != vector.shape[0]:
            return None
        now = self._clock()
        while True:
            found = group.best(vector)
            if found is None or found[1] < self.similarity_threshold:
                return None
            entry = self._touch(self._entries[found[0]], now)
            if entry is not None:
                return entry, found[1]
            if context not in self._groups:
                return None

    def put(self, key: RequestKey, vector: embed.Vector | None, response: CachedResponse) -> None:
        """Store a response, evicting the least recently used entries beyond the bound."""
        now = self._clock()
        self._remove(key.exact, "")
        self._entries[key.exact] = Entry(key.exact, key.context, vector, response, now)
        if vector is not None:
            group = self._groups.get(key.context)
            if group is None or group.matrix.shape[1] != vector.shape[0]:
                group = self._groups[key.context] = _Group(vector.shape[0])
            group.add(key.exact, vector)
        while len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            self._remove(oldest, "lru")

    def sweep(self) -> int:
        """Drop every expired entry; returns how many were dropped."""
        now = self._clock()
        expired = [k for k, e in self._entries.items() if self._expired(e, now)]
        for key in expired:
            self._remove(key, "ttl")
        return len(expired)
