"""A real Prometheus for tests: the project's pinned build, started on a free port.

`Prometheus.start(config, directory)` writes `config` (a Prometheus configuration as a
dict) and runs `bin/prometheus` (through `tools.path`, never one from PATH) with its
TSDB in `directory`, waits until /-/ready answers, and returns the running server.
`query` and `query_range` call the HTTP API and raise `QueryError` with Prometheus's
own message when a query does not parse or fails. `stop()` ends the process.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

from tests.support import tools


def _open(request: str | urllib.request.Request, timeout: float) -> Any:
    """urlopen for the local Prometheus only (http://127.0.0.1)."""
    url = request if isinstance(request, str) else request.full_url
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not the local Prometheus: {url}")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - checked above


class QueryError(Exception):
    """Prometheus refused or failed a query (its errorType and error in the message)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class Prometheus:
    """A running Prometheus process."""

    url: str
    process: subprocess.Popen[bytes]
    directory: pathlib.Path

    @classmethod
    def start(
        cls, config: dict[str, Any], directory: pathlib.Path, timeout: float = 60.0
    ) -> Prometheus:
        directory.mkdir(parents=True, exist_ok=True)
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        port = free_port()
        log = (directory / "prometheus.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - the project's own pinned binary
            [
                str(tools.path("prometheus")),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = cls(f"http://127.0.0.1:{port}", process, directory)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited {process.returncode}: {server.log()}")
            try:
                with _open(server.url + "/-/ready", 2) as response:
                    if response.status == 200:
                        return server
            except OSError:
                pass
            time.sleep(0.2)
        server.stop()
        raise RuntimeError(f"prometheus not ready after {timeout}s: {server.log()}")

    def log(self) -> str:
        path = self.directory / "prometheus.log"
        return path.read_text(encoding="utf-8", errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def _api(self, path: str, params: dict[str, str]) -> Any:
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")  # noqa: S310
        try:
            with _open(request, 60) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (vector or scalar as a one-sample list)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._api("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's matrix."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        result: list[dict[str, Any]] = self._api("/api/v1/query_range", params)["result"]
        return result

    def metric_names(self) -> set[str]:
        """Every metric name Prometheus holds a series of."""
        with _open(self.url + "/api/v1/label/__name__/values", 60) as response:
            return set(json.load(response)["data"])

    def rules(self) -> list[dict[str, Any]]:
        """Every rule Prometheus loaded, with its health."""
        with _open(self.url + "/api/v1/rules", 60) as response:
            groups = json.load(response)["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def targets_up(self) -> list[dict[str, Any]]:
        with _open(self.url + "/api/v1/targets", 60) as response:
            active: list[dict[str, Any]] = json.load(response)["data"]["activeTargets"]
        return active
