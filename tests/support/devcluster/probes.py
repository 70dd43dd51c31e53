"""Health probes and a small admin HTTPS client for the API server (stdlib only).

The cluster is started before any Kubernetes client could be configured, so the
few calls `up` needs (readiness, nodes, the default ServiceAccount) go through
`urllib` with the admin client certificate.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.support.devcluster import certs, model, procs

# --------------------------------------------------------------------------- HTTP


class Api:
    """A minimal typed HTTPS client for the admin user (the untyped client stays out)."""

    def __init__(self, server: str, pki: certs.Pki) -> None:
        self.server = server
        cert, key = pki.client("admin")
        self._ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._ctx.load_cert_chain(str(cert), str(key))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - https to our own API server
            self.server + path, data=data, method=method
        )
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        except (OSError, ssl.SSLError) as exc:  # URLError is an OSError
            return 0, str(getattr(exc, "reason", exc))
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")


def _http_ok(
    url: str, timeout: float = 3.0, context: ssl.SSLContext | None = None
) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310
            body = resp.read(2000).decode("utf-8", "replace").strip()
            return 200 <= resp.status < 300, body
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read(2000).decode('utf-8', 'replace').strip()}"
    except (OSError, ssl.SSLError) as exc:
        return False, str(exc)


def _insecure_context() -> ssl.SSLContext:
    # The controller manager and scheduler serve /healthz with self-signed certificates.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def health(name: str, state: dict[str, Any], pki: certs.Pki | None) -> tuple[bool, str]:
    ports = state.get("ports", {})
    if name == "etcd":
        return _http_ok(f"http://127.0.0.1:{ports['etcd']}/health")
    if name == "kube-apiserver":
        if pki is None:
            return False, "no certificates"
        status, body = Api(state["server"], pki).request("GET", "/readyz", timeout=5)
        return status == 200, str(body).strip()[:500]
    if name in ("kube-controller-manager", "kube-scheduler"):
        return _http_ok(f"https://127.0.0.1:{ports[name]}/healthz", context=_insecure_context())
    if name == "kwok":
        return _http_ok(f"http://127.0.0.1:{ports['kwok']}/healthz")
    return False, "unknown component"


def wait(
    what: str,
    check: Callable[[], tuple[bool, str]],
    timeout: float,
    watch: Sequence[tuple[str, dict[str, Any]]],
    interval: float = 0.5,
) -> None:
    """Poll `check` until it passes; fail early if a watched process dies."""
    deadline = time.monotonic() + timeout
    detail = ""
    while True:
        for name, info in watch:
            if not procs.alive(int(info["pid"]), info.get("start_time")):
                raise model.ClusterError(
                    f"{name} exited while waiting for {what}; last lines of {info['log']}:\n"
                    f"{procs.log_tail(Path(info['log']))}"
                )
        ok, detail = check()
        if ok:
            return
        if time.monotonic() > deadline:
            name, info = watch[-1] if watch else ("", {})
            tail = (
                f"; last lines of {info['log']}:\n{procs.log_tail(Path(info['log']))}"
                if info
                else ""
            )
            raise model.ClusterError(
                f"timed out after {timeout:.0f}s waiting for {what} ({detail}){tail}"
            )
        time.sleep(interval)
