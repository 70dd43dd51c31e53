"""API keys read from a mounted Secret, and per-key token buckets for requests and tokens.

The Secret named by `policy.apiKeys.secretName` is mounted as a folder with one
file per key id whose content is the SHA-256 hex digest of the key; the keys
themselves never reach the cluster. A request presents `Authorization: Bearer
<key>`; the gateway hashes it and compares the digest with every stored digest
using `hmac.compare_digest`, visiting all of them whatever matches, so the time
taken says nothing about which key, or how much of a digest, matched.

Each key id has two token buckets, refilled continuously: requests per minute and
tokens per minute (prompt plus completion). A request takes one request token and
its estimated prompt tokens up front; the completion tokens, known only at the end,
are charged afterwards and may leave the bucket in debt, which delays the key's
next request. A refusal carries the seconds until the bucket can serve it, for the
`Retry-After` header.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import pathlib
import re
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest stored in the Secret for `key`."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <key>` header, or None."""
    if not header:
        return None
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    credential = credential.strip()
    return credential or None


class KeyStore:
    """Key id to digest, loaded from the mounted Secret folder."""

    def __init__(self, digests: dict[str, str] | None = None) -> None:
        self._entries: tuple[tuple[str, bytes], ...] = tuple(
            (key_id, digest.encode()) for key_id, digest in sorted((digests or {}).items())
        )

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_dir(cls, folder: pathlib.Path) -> KeyStore:
        """Read every visible file of `folder`; files that are not a SHA-256 digest are skipped."""
        digests: dict[str, str] = {}
        try:
            children = sorted(folder.iterdir())
        except OSError as exc:
            logger.warning("cannot list API key folder %s: %s", folder, type(exc).__name__)
            return cls()
        for child in children:
            if child.name.startswith(".") or not child.is_file():
                continue
            try:
                content = child.read_text(encoding="ascii").strip().lower()
            except (OSError, UnicodeDecodeError):
                logger.warning("API key %s is unreadable; skipped", child.name)
                continue
            if not _DIGEST.match(content):
                logger.warning("API key %s is not a SHA-256 hex digest; skipped", child.name)
                continue
            digests[child.name] = content
        return cls(digests)

    def authenticate(self, key: str | None) -> str | None:
        """The key id whose digest matches `key`, or None; constant time over all keys."""
        if key is None:
            return None
        presented = hash_key(key).encode()
        found: str | None = None
        for key_id, digest in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = key_id
        return found


@dataclasses.dataclass
class Bucket:
    """A token bucket: `capacity` tokens, refilled at `capacity` per minute."""

    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        """Add what accrued since the last update, up to the capacity."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` (capped at the capacity) is available; 0 if it is now."""
        needed = min(amount, self.capacity)
        if self.level >= needed:
            return 0.0
        return (needed - self.level) / self.rate


class RateLimiter:
    """Per-key request and token buckets; limits of None mean unlimited."""

    def __init__(
        self,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}

    def same_limits(self, requests_per_minute: int | None, tokens_per_minute: int | None) -> bool:
        """Whether this limiter enforces these limits (so its buckets can be kept on reload)."""
        return (requests_per_minute, tokens_per_minute) == (
            self.requests_per_minute,
            self.tokens_per_minute,
        )

    def _bucket(self, table: dict[str, Bucket], key_id: str, capacity: int, now: float) -> Bucket:
        bucket = table.get(key_id)
        if bucket is None:
            bucket = table[key_id] = Bucket(float(capacity), float(capacity), now)
        else:
            bucket.refill(now)
        return bucket

    def acquire(self, key_id: str, prompt_tokens: int) -> tuple[str, float] | None:
        """Take one request and `prompt_tokens` tokens, or return (limit, retry_after)."""
        now = self._clock()
        requests = tokens = None
        if self.requests_per_minute is not None:
            requests = self._bucket(self._requests, key_id, self.requests_per_minute, now)
            wait = requests.wait_for(1.0)
            if wait > 0:
                return "requests", wait
        if self.tokens_per_minute is not None:
            tokens = self._bucket(self._tokens, key_id, self.tokens_per_minute, now)
            wait = tokens.wait_for(max(1.0, float(prompt_tokens)))
            if wait > 0:
                return "tokens", wait
        if requests is not None:
            requests.level -= 1.0
        if tokens is not None:
            tokens.level -= float(prompt_tokens)
        return None

    def charge(self, key_id: str, extra_tokens: int) -> None:
        """Charge tokens known only after the response (completion, or a prompt correction)."""
        if self.tokens_per_minute is None or extra_tokens == 0:
            return
        bucket = self._bucket(self._tokens, key_id, self.tokens_per_minute, self._clock())
        # Debt is bounded by one minute's budget, so a key is never locked out for longer.
        bucket.level = max(-bucket.capacity, bucket.level - float(extra_tokens))
