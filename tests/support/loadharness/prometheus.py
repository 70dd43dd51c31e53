"""A real Prometheus for tests and demos: the project's pinned build, file-based service discovery.

`Prometheus.start(workdir)` runs `prometheus` (`tests.support.tools.path`, built by
`make tools`; never one from PATH) on a free loopback port with a 1 s scrape and
evaluation interval, a throw-away TSDB under `workdir`, and one scrape job whose
targets come from JSON files in `workdir/targets/` (file_sd). `set_targets(group,
targets)` writes one such file atomically (Prometheus picks it up within a second);
each target carries its labels, and `__metrics_path__` picks the path. `query(expr)`
runs an instant query through the HTTP API and returns the JSON result; `value(expr)`
the summed value or None. `stop()` ends the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.support import tools
from tests.support.devcluster import procs

SCRAPE_INTERVAL = "1s"


class PrometheusError(RuntimeError):
    """Prometheus could not be started or answered with an error."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One scrape target: an address, a metrics path and its labels."""

    address: str
    path: str
    labels: dict[str, str]


class Prometheus:
    """One Prometheus process and its file-SD directory."""

    def __init__(self, workdir: pathlib.Path, process: subprocess.Popen[bytes], port: int) -> None:
        self.workdir = workdir
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.targets_dir = workdir / "targets"

    @classmethod
    def start(
        cls, workdir: pathlib.Path, scrape_interval: str = SCRAPE_INTERVAL, timeout: float = 60.0
    ) -> Prometheus:
        """Start Prometheus and wait until it is ready."""
        binary = tools.path("prometheus")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "targets").mkdir(exist_ok=True)
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "llm",
                    "scrape_timeout": scrape_interval,
                    "file_sd_configs": [
                        {"files": [str(workdir / "targets" / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        config_file = workdir / "prometheus.yml"
        # JSON is YAML: no YAML writer needed for a file only Prometheus reads.
        config_file.write_text(json.dumps(config, indent=1), encoding="utf-8")
        (port,) = procs.free_ports(1)
        log = (workdir / "prometheus.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - the project's own binary, fixed arguments
            [
                str(binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        prometheus = cls(workdir, process, port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {process.returncode}: {prometheus.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as answer,  # noqa: S310
            ):
                if answer.status == 200:
                    return prometheus
            time.sleep(0.2)
        prometheus.stop()
        raise PrometheusError(
            f"prometheus was not ready in {timeout:.0f}s: {prometheus.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "prometheus.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def set_targets(self, group: str, targets: list[Target]) -> None:
        """Replace the targets of one group (one file), atomically."""
        document = [
            {
                "targets": [t.address],
                "labels": {**t.labels, "__metrics_path__": t.path},
            }
            for t in targets
        ]
        path = self.targets_dir / f"{group}.json"
        text = json.dumps(document)
        with contextlib.suppress(FileNotFoundError):
            if path.read_text(encoding="utf-8") == text:
                return
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)

    def remove_targets(self, group: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.targets_dir / f"{group}.json").unlink()

    def query(self, expr: str) -> dict[str, Any]:
        """The `data` of an instant query; raises PrometheusError on an error answer."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
                payload = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
        if payload.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {payload.get('error')}")
        data: dict[str, Any] = payload["data"]
        return data

    def value(self, expr: str) -> float | None:
        """The query's samples summed, or None when it returns no series."""
        data = self.query(expr)
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        samples = [float(item["value"][1]) for item in data["result"]]
        return sum(samples) if samples else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
