"""The harness's Prometheus: the project's pinned build with file-based service discovery.

`Prometheus.start(workdir)` runs `tests.support.prometheus` (the project's pinned
Prometheus, never one from PATH) with a 1 s scrape and evaluation interval and one
scrape job whose targets come from JSON files in `workdir/targets/` (file_sd).
`set_targets(group, targets)` writes one such file atomically when it changed
(Prometheus picks it up within a second); each target carries its labels, and
`__metrics_path__` picks the path. `value(expr)` runs an instant query and sums its
samples (None when there are none); `server` is the underlying
`tests.support.prometheus.Prometheus` (query, query_range, metric names, targets).
`stop()` ends the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib

from tests.support import prometheus as support_prometheus

SCRAPE_INTERVAL = "1s"


@dataclasses.dataclass(frozen=True)
class Target:
    """One scrape target: an address, a metrics path and its labels."""

    address: str
    path: str
    labels: dict[str, str]


class Prometheus:
    """One Prometheus process and its file-SD directory."""

    def __init__(self, server: support_prometheus.Prometheus, targets_dir: pathlib.Path) -> None:
        self.server = server
        self.url = server.url
        self.targets_dir = targets_dir

    @classmethod
    def start(cls, workdir: pathlib.Path, scrape_interval: str = SCRAPE_INTERVAL) -> Prometheus:
        """Start Prometheus and wait until it is ready."""
        targets_dir = workdir / "targets"
        targets_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "llm",
                    "scrape_timeout": scrape_interval,
                    "file_sd_configs": [
                        {"files": [str(targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        return cls(support_prometheus.Prometheus.start(config, workdir), targets_dir)

    def set_targets(self, group: str, targets: list[Target]) -> None:
        """Replace the targets of one group (one file), atomically, when they changed."""
        document = [
            {"targets": [t.address], "labels": {**t.labels, "__metrics_path__": t.path}}
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

    def value(self, expr: str) -> float | None:
        """The query's samples summed, or None when it returns no series."""
        samples = [float(item["value"][1]) for item in self.server.query(expr)]
        return sum(samples) if samples else None

    def stop(self) -> None:
        self.server.stop()
