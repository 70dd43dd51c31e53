"""A real Prometheus for tests: the project's pinned build, its targets and rules from files.

`Prometheus.start(workdir)` runs `bin/prometheus` (through `tools.path`, never one
from PATH) on a free loopback port with its TSDB in `workdir`, a 1 s scrape and
evaluation interval, and waits until /-/ready answers. Its scrape jobs take their
targets from file-based service discovery: `set_targets(group, targets, job)` writes
one JSON file atomically when it changed (Prometheus picks it up within a second);
each `Target` carries its labels, and `__metrics_path__` picks the path. Job `llm`
(`JOB`) holds the serving processes; job `llm-operator` (`OPERATOR_JOB`) the
operator's metrics endpoint, scraped with `honor_labels` as the chart's
ServiceMonitor must (its per-LLMDeployment series keep their own `namespace`).
`set_rules(name, groups)` loads a rule file (the groups of a PrometheusRule) and has
Prometheus reload. `query` and `query_range` call the HTTP API and raise `QueryError`
with Prometheus's own message when a query does not parse or fails; `value(expr)`
sums an instant query's samples (None when there are none); `metric_names`, `rules`
and `targets_up` read the rest. `stop()` ends the process.
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

import yaml

from tests.support import tools
from tests.support.devcluster import procs

SCRAPE_INTERVAL = "1s"
#: The scrape job of the serving processes (engines, gateways, the load's Service).
JOB = "llm"
#: The scrape job of the operator's metrics endpoint (the dashboards' `$job`).
OPERATOR_JOB = "llm-operator"


def _open(request: str | urllib.request.Request, timeout: float) -> Any:
    """urlopen for the local Prometheus only (http://127.0.0.1)."""
    url = request if isinstance(request, str) else request.full_url
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not the local Prometheus: {url}")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - checked above


class QueryError(Exception):
    """Prometheus refused or failed a query (its errorType and error in the message)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One scrape target: an address, a metrics path and its labels."""

    address: str
    path: str
    labels: dict[str, str]


def _config(workdir: pathlib.Path, scrape_interval: str) -> dict[str, Any]:
    def job(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "job_name": name,
            "scrape_timeout": scrape_interval,
            "file_sd_configs": [
                {"files": [str(workdir / "targets" / name / "*.json")], "refresh_interval": "1s"}
            ],
            **extra,
        }

    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(workdir / "rules" / "*.yaml")],
        "scrape_configs": [job(JOB), job(OPERATOR_JOB, honor_labels=True)],
    }


def _replace(path: pathlib.Path, text: str) -> bool:
    """Write `text` to `path` atomically (Prometheus never reads half a file), unless it
    holds that already; whether it wrote."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_text(encoding="utf-8") == text:
            return False
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return True


@dataclasses.dataclass
class Prometheus:
    """A running Prometheus process, its target files and its rule files."""

    url: str
    process: subprocess.Popen[bytes]
    directory: pathlib.Path

    @classmethod
    def start(
        cls, workdir: pathlib.Path, scrape_interval: str = SCRAPE_INTERVAL, timeout: float = 60.0
    ) -> Prometheus:
        """Start Prometheus and wait until it is ready."""
        for folder in (workdir / "targets" / JOB, workdir / "targets" / OPERATOR_JOB):
            folder.mkdir(parents=True, exist_ok=True)
        (workdir / "rules").mkdir(exist_ok=True)
        config_file = workdir / "prometheus.yml"
        config = _config(workdir, scrape_interval)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        (port,) = procs.free_ports(1)
        with (workdir / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - the project's own pinned binary
                [
                    str(tools.path("prometheus")),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(f"http://127.0.0.1:{port}", process, workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited {process.returncode}: {server.log()}")
            with contextlib.suppress(OSError), _open(server.url + "/-/ready", 2) as response:
                if response.status == 200:
                    return server
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

    # --- what it scrapes and evaluates -----------------------------------------------------

    def set_targets(self, group: str, targets: list[Target], job: str = JOB) -> None:
        """Replace the targets of one group (one file) of a job, atomically, when they changed."""
        document = [
            {"targets": [t.address], "labels": {**t.labels, "__metrics_path__": t.path}}
            for t in targets
        ]
        _replace(self.directory / "targets" / job / f"{group}.json", json.dumps(document))

    def remove_targets(self, group: str, job: str = JOB) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "targets" / job / f"{group}.json").unlink()

    def set_rules(self, name: str, groups: list[dict[str, Any]]) -> None:
        """Load rule groups as the rule file `name` (replacing it), when they changed."""
        text = yaml.safe_dump({"groups": groups}, sort_keys=False)
        if _replace(self.directory / "rules" / f"{name}.yaml", text):
            self.reload()

    def remove_rules(self, name: str) -> None:
        path = self.directory / "rules" / f"{name}.yaml"
        if path.exists():
            path.unlink()
            self.reload()

    def reload(self) -> None:
        """Have Prometheus read its configuration and rule files again."""
        request = urllib.request.Request(  # noqa: S310 - _open checks it
            self.url + "/-/reload", data=b"", method="POST"
        )
        with _open(request, 30) as response:
            if response.status != 200:
                raise RuntimeError(f"prometheus reload answered {response.status}: {self.log()}")

    # --- the HTTP API --------------------------------------------------------------------

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

    def value(self, expr: str) -> float | None:
        """The query's samples summed, or None when it returns no series."""
        samples = [float(item["value"][1]) for item in self.query(expr)]
        return sum(samples) if samples else None

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
