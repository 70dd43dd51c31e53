"""One request as the gateway's routes see it: the aiohttp request, its body, its bookkeeping.

The request layer (`app`) reads the body (within the policy's size limit and the
body timeout) before a route runs, so a route gets an `Exchange` whose `body` is
complete; `Context` collects what the metrics and the access log record about the
request (never any text of it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web, web_request

from llm_serving.gateway import fastjson

JSON = "application/json"


@dataclasses.dataclass
class Context:
    """Per-request bookkeeping for metrics and the access log (never any text)."""

    request_id: str
    started: float
    route: str
    upstream_seconds: float = 0.0
    proxied: bool = False
    model: str | None = None
    key_id: str | None = None
    stream: bool = False
    cache: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    blocked_by: str | None = None
    client_gone: bool = False


@dataclasses.dataclass
class Exchange:
    """A request with its whole body, and its context."""

    request: web_request.BaseRequest
    body: bytes
    ctx: Context

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters ("" when absent)."""
        return self.request.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    """A whole answer."""
    return web.Response(status=status, body=body, headers=headers)


def json_response(document: dict[str, Any]) -> web.Response:
    """A 200 answer carrying `document` as JSON."""
    return web.Response(body=fastjson.dumps(document), headers={"Content-Type": JSON})
