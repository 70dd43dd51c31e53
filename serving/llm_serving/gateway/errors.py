"""OpenAI-style error bodies and the exceptions the gateway raises to produce them.

Every response the gateway itself refuses or fails carries the body clients of the
OpenAI API already parse, `{"error": {"message", "type", "param", "code"}}`, with a
fitting HTTP status (and `Retry-After` where waiting helps). Handlers raise
`GatewayError`; the request handler in `app.py` turns it, and anything unexpected,
into such a response (`connections.json_error`), so there is never a bare 500 or an
HTML error page. Messages never quote the prompt or the completion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from llm_serving.gateway import fastjson
from llm_serving.guardrails import pipeline

JSON_CONTENT_TYPE = "application/json"


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The OpenAI error document."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class GatewayError(Exception):
    """A request the gateway answers with an OpenAI-style error instead of forwarding it."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The error document for this error."""
        return error_body(self.message, self.type, self.code, self.param)

    def encoded(self) -> bytes:
        """The error document as JSON bytes."""
        return fastjson.dumps(self.body())


def retry_after(seconds: float) -> dict[str, str]:
    """A `Retry-After` header with whole seconds, at least one."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def invalid_request(
    message: str, code: str | None = None, param: str | None = None
) -> GatewayError:
    """HTTP 400 for a body the gateway cannot use."""
    return GatewayError(400, message, "invalid_request_error", code, param)


def guardrail_violation(finding: pipeline.Finding) -> GatewayError:
    """HTTP 400 for a prompt or completion a guardrail blocked; the message has no PII."""
    return GatewayError(400, finding.message, "guardrail_violation", finding.check)


def guardrail_body(finding: pipeline.Finding) -> dict[str, Any]:
    """The error document of a blocked completion, as sent in a stream's final event."""
    return guardrail_violation(finding).body()


def unauthorized(message: str) -> GatewayError:
    """HTTP 401 for a missing or unknown API key."""
    return GatewayError(
        401,
        message,
        "authentication_error",
        "invalid_api_key",
        headers={"WWW-Authenticate": 'Bearer realm="llm-gateway"'},
    )


def rate_limited(limit: str, seconds: float) -> GatewayError:
    """HTTP 429 when a key's request or token bucket is empty."""
    return GatewayError(
        429,
        f"Rate limit reached for {limit} per minute; retry after the Retry-After delay.",
        "rate_limit_error",
        "rate_limit_exceeded",
        headers=retry_after(seconds),
    )


def not_found(path: str) -> GatewayError:
    """HTTP 404 for a route the gateway does not serve."""
    return GatewayError(404, f"No route for {path}.", "not_found_error", "not_found")


def method_not_allowed(method: str, allowed: set[str] | frozenset[str]) -> GatewayError:
    """HTTP 405 with the `Allow` header."""
    return GatewayError(
        405,
        f"Method {method} is not allowed here.",
        "invalid_request_error",
        "method_not_allowed",
        headers={"Allow": ", ".join(sorted(allowed))},
    )


def headers_too_large(max_line: int, max_headers: int) -> GatewayError:
    """HTTP 431 for a request head over the server's limits."""
    return GatewayError(
        431,
        f"The request head is too large: at most {max_headers} headers, and {max_line} bytes "
        "for the request line and for each header.",
        "invalid_request_error",
        "headers_too_large",
    )


def unsupported_media_type(content_type: str) -> GatewayError:
    """HTTP 415 for a body that is not JSON."""
    shown = content_type[:64] if content_type else "none"
    return GatewayError(
        415,
        f"Content-Type must be application/json, not {shown}.",
        "invalid_request_error",
        "unsupported_media_type",
    )


def request_timeout(seconds: float) -> GatewayError:
    """HTTP 408 for a body that did not arrive whole in time."""
    return GatewayError(
        408,
        f"The request body did not arrive within {seconds:g} seconds.",
        "invalid_request_error",
        "request_timeout",
    )


def body_too_large(limit: int) -> GatewayError:
    """HTTP 413 for a body over `maxBodyBytes`."""
    return GatewayError(
        413,
        f"Request body is larger than {limit} bytes.",
        "invalid_request_error",
        "request_too_large",
    )


def upstream_unavailable(seconds: float = 1.0) -> GatewayError:
    """HTTP 503 when the engine refuses connections (starting, restarting, overloaded)."""
    return GatewayError(
        503,
        "The model server is not available; retry shortly.",
        "server_error",
        "upstream_unavailable",
        headers=retry_after(seconds),
    )


def checks_busy() -> GatewayError:
    """HTTP 503 when too many long texts wait for the check workers."""
    return GatewayError(
        503,
        "The gateway is busy checking other long texts; retry shortly.",
        "server_error",
        "checks_busy",
        headers=retry_after(1),
    )


def checks_failed(detail: str) -> GatewayError:
    """HTTP 503 when the checks of a long text could not finish (fail closed)."""
    return GatewayError(
        503, f"The guardrail checks failed: {detail}.", "server_error", "checks_unavailable"
    )


def upstream_timeout() -> GatewayError:
    """HTTP 504 when the engine does not answer in time."""
    return GatewayError(
        504, "The model server did not answer in time.", "server_error", "upstream_timeout"
    )


def upstream_failed(detail: str) -> GatewayError:
    """HTTP 502 when the engine broke the connection or sent something unusable."""
    return GatewayError(
        502, f"The model server failed: {detail}.", "server_error", "upstream_error"
    )


def internal(request_id: str | None) -> GatewayError:
    """HTTP 500 for a bug in the gateway; the request id lets operators find the log line."""
    return GatewayError(
        500,
        f"The gateway failed to handle this request (request id {request_id or 'unknown'}).",
        "server_error",
        "internal_error",
    )
