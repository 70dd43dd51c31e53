"""The health endpoint of a replica waiting for the leader Lease.

kopf serves the liveness endpoint (`--liveness`, :8080/healthz in the chart) only
while it runs, that is on the leader. A standby serves the same URL itself, so the
kubelet's probes pass on every healthy replica; it answers 200 with
`{"leader": false}` and stops listening just before kopf starts on the same port.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator

from aiohttp import web


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"leader": False, "state": "standby"})


@contextlib.asynccontextmanager
async def serving(endpoint: str | None) -> AsyncIterator[None]:
    """Serve `endpoint` (kopf's liveness URL, e.g. http://0.0.0.0:8080/healthz) while inside."""
    if not endpoint:
        yield
        return
    url = urllib.parse.urlsplit(endpoint)
    app = web.Application()
    app.router.add_get(url.path or "/", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 80)  # noqa: S104
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()
