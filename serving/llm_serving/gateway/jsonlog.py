"""JSON log lines with the request id, for the gateway's logs.

`configure()` installs one handler on the root logger that writes one JSON object
per line: time, level, logger, message, the current request id (from a context
variable the request middleware sets, so every log call made while handling a
request carries it) and any structured fields passed as `extra={"fields": {...}}`.
Callers log metadata only (route, status, durations, token counts, check names),
never prompt text, completions or personal data.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import sys
from typing import Any

from llm_serving.gateway import fastjson

#: The id of the request being handled by the current task, if any.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "llm_gateway_request_id", default=None
)


class JsonFormatter(logging.Formatter):
    """Format a record as a single-line JSON object (orjson; one per request by default)."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds, as `datetime.isoformat(timespec="milliseconds")`."""
        second = int(created)
        micros = round((created - second) * 1e6)  # rounded to microseconds, as datetime does
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            moment = datetime.datetime.fromtimestamp(second, tz=datetime.UTC)
            self._second, self._second_text = second, moment.strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._second_text}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(str(key), value)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return fastjson.dumps(entry, default=str).decode()


def configure(level: int | str = logging.INFO) -> None:
    """Send every log record to stderr as JSON lines (replaces existing root handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log would duplicate our own per-request line, with the raw path.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
