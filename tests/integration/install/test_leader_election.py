"""Two operator processes against the real API server: one acts, the other takes over.

The chart is installed with short leader election timings (lease 4 s, renew deadline
3 s, retry 1 s); two `llm-operator` processes run with its arguments and its
ServiceAccount's token. One holds the Lease and reconciles, the other waits and
answers its health URL as a standby. The leader is killed with SIGKILL: the standby
holds the Lease within `Timing.takeover_bound` (lease + 2 retries = 6 s, plus 2 s
for the API calls and the polling here) and reconciles a change; every LLMDeployment
still has exactly one child of each kind. A leader that is frozen (SIGSTOP) past its
renew deadline steps down when it wakes: it exits 1 without writing, and the other
takes over.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llm_operator import leader
from llm_operator.builders import children
from tests.integration import cluster, test_operator
from tests.integration.install import conftest as install

pytestmark = pytest.mark.integration

RELEASE = "ha"
NAMESPACE = "ha-system"
FULLNAME = "ha-llm-operator"
LEASE = f"{FULLNAME}-leader"
TIMING = leader.Timing(lease_duration=4, renew_deadline=3, retry_period=1)
SLACK = 2.0  # API round trips and this test's own polling interval


@pytest.fixture(scope="module")
def release(plane: cluster.ControlPlane, helm: pathlib.Path) -> Iterator[cluster.ControlPlane]:
    plane.core.create_namespace({"metadata": {"name": NAMESPACE}})
    install.run(
        [
            helm,
            "install",
            RELEASE,
            install.CHART,
            "-n",
            NAMESPACE,
            "--set",
            f"leaderElection.leaseDurationSeconds={TIMING.lease_duration:g}",
            "--set",
            f"leaderElection.renewDeadlineSeconds={TIMING.renew_deadline:g}",
            "--set",
            f"leaderElection.retryPeriodSeconds={TIMING.retry_period:g}",
            "--wait",
        ],
        kubeconfig=plane.kubeconfig,
    )
    yield plane
    install.run([helm, "uninstall", RELEASE, "-n", NAMESPACE, "--wait"], plane.kubeconfig)


def holder(plane: cluster.ControlPlane) -> str | None:
    lease = plane.dynamic.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    try:
        found: dict[str, Any] = lease.get(name=LEASE, namespace=NAMESPACE).to_dict()
    except Exception:
        return None
    holder_identity: str | None = (found.get("spec") or {}).get("holderIdentity")
    return holder_identity


def identity_of(proc: install.OperatorProcess) -> str | None:
    """The identity the process logged when it started waiting for the Lease (None: not yet)."""
    for line in proc.text().splitlines():
        if "waiting for the leader lease" in line:
            return line.rsplit(" as ", 1)[1].strip()
    return None


def identities(*procs: install.OperatorProcess) -> list[str]:
    """Each process's identity, once every one has logged it."""
    found = install.wait_until(
        "the processes to log their identities",
        lambda: all(identity_of(p) for p in procs) and [identity_of(p) for p in procs],
        timeout=60,
    )
    return [str(identity) for identity in found]


def children_by_kind(plane: cluster.ControlPlane, namespace: str, name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in children.CHILD_KINDS:
        resource = plane.dynamic.resources.get(api_version=kind.api_version, kind=kind.kind)
        items = resource.get(
            namespace=namespace, label_selector=f"llmoperator.io/deployment={name}"
        )
        if items.items:
            counts[kind.kind] = len(items.items)
    return counts


def operator_pair(
    release: cluster.ControlPlane, tmp_path: pathlib.Path
) -> tuple[install.OperatorProcess, install.OperatorProcess]:
    """Two operator processes (not started) with the chart's arguments and the token of
    its ServiceAccount."""
    kubeconfig = install.service_account_kubeconfig(
        release, NAMESPACE, FULLNAME, tmp_path / "sa.kubeconfig"
    )
    args = install.chart_args(release, NAMESPACE, FULLNAME)
    return (
        install.OperatorProcess(kubeconfig, tmp_path / "first.log", args),
        install.OperatorProcess(kubeconfig, tmp_path / "second.log", args),
    )


def leader_and_standby(
    release: cluster.ControlPlane, first: install.OperatorProcess, second: install.OperatorProcess
) -> tuple[install.OperatorProcess, install.OperatorProcess, str]:
    """Once one of two started processes leads: the leader, the other, and its identity."""
    first_id, second_id = identities(first, second)
    install.wait_until(
        "one process to lead", lambda: holder(release) in {first_id, second_id}, timeout=60
    )
    if holder(release) == first_id:
        return first, second, second_id
    return second, first, first_id


def test_chart_timings_reach_the_operator(release: cluster.ControlPlane) -> None:
    args = install.chart_args(release, NAMESPACE, FULLNAME)
    assert "--lease-seconds=4" in args
    assert "--renew-deadline-seconds=3" in args
    assert "--retry-period-seconds=1" in args


def test_standby_takes_over_after_sigkill_within_the_bound(
    release: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    first, second = operator_pair(release, tmp_path)
    workload = release.create_namespace("ha-apps")
    doc = test_operator.load(install.ROOT / "examples" / "guardrails.yaml")
    name = doc["metadata"]["name"]
    with install.operators(first.start()):
        (first_id,) = identities(first)
        install.wait_until(
            "the first process to lead", lambda: holder(release) == first_id, timeout=60
        )
        with install.operators(second.start()):
            (second_id,) = identities(second)
            install.wait_until(
                "the second process to wait as a standby",
                lambda: second.health() == (200, {"leader": False, "state": "standby"}),
                timeout=60,
            )
            assert second.metric("llm_operator_leader") == 0.0
            assert first.metric("llm_operator_leader") == 1.0
            test_operator.create(release, workload, doc)
            test_operator.wait_ready(release, workload, name)
            before = children_by_kind(release, workload, name)

            first.signal(signal.SIGKILL)
            killed = time.monotonic()
            first.wait(10)
            install.wait_until(
                "the standby to take the Lease",
                lambda: holder(release) == second_id,
                timeout=TIMING.takeover_bound + SLACK + 10,
                interval=0.1,
            )
            took = time.monotonic() - killed
            print(f"takeover {took:.2f}s after SIGKILL (bound {TIMING.takeover_bound:g}s)")
            assert took <= TIMING.takeover_bound + SLACK
            install.wait_until(
                "the new leader's metrics to say so",
                lambda: second.metric("llm_operator_leader") == 1.0,
                timeout=30,
            )
            # The new leader reconciles: a change reaches the Deployment and the status.
            test_operator.patch_spec(release, workload, name, {"replicas": 2})
            obj = test_operator.wait_ready(release, workload, name)
            assert obj["status"]["readyReplicas"] == 2
            assert release.apps.read_namespaced_deployment(name, workload).spec.replicas == 2
            after = children_by_kind(release, workload, name)
            assert after == before
            assert set(after.values()) == {1}, after
    release.delete_namespace(workload)


def test_a_frozen_leader_steps_down_without_writing(
    release: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    first, second = operator_pair(release, tmp_path)
    workload = release.create_namespace("ha-frozen")
    doc = test_operator.load(install.ROOT / "examples" / "minimal.yaml")
    name = doc["metadata"]["name"]
    with install.operators(first.start(), second.start()):
        old, _, new_id = leader_and_standby(release, first, second)
        test_operator.create(release, workload, doc)
        test_operator.wait_ready(release, workload, name)
        old.signal(signal.SIGSTOP)
        # A change while the leader is frozen: its watch will deliver it when it wakes.
        test_operator.patch_spec(release, workload, name, {"replicas": 2})
        install.wait_until(
            "the standby to take over from the frozen leader",
            lambda: holder(release) == new_id,
            timeout=TIMING.takeover_bound + SLACK + 10,
        )
        obj = test_operator.wait_ready(release, workload, name)
        assert obj["status"]["readyReplicas"] == 2
        woke_at = len(old.text())
        old.signal(signal.SIGCONT)
        code = old.wait(30)
        log = old.text()
        assert code == 1, log[-3000:]
        assert "stepping down" in log[woke_at:]
        assert "exiting so that a standby takes over" in log[woke_at:]
        # Whatever it handled after waking, it wrote nothing: a handler that wrote logs
        # the new status; a refused write logs the refusal.
        after = log[woke_at:]
        assert "status: " not in after, after
        assert holder(release) == new_id
    release.delete_namespace(workload)


def test_a_leader_stopped_with_sigterm_hands_over_at_once(
    release: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    # A normal stop (a rolling update, a drained node) releases the Lease: the standby
    # takes over at its next retry instead of waiting for the lease to run out.
    first, second = operator_pair(release, tmp_path)
    with install.operators(first.start(), second.start()):
        old, new, new_id = leader_and_standby(release, first, second)
        install.wait_until(
            "the other to wait as a standby",
            lambda: new.health() == (200, {"leader": False, "state": "standby"}),
            timeout=60,
        )
        old.signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = old.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 30 s after SIGTERM:\n{old.text()[-3000:]}", pytrace=False)
        assert code == 0, old.text()[-3000:]
        exited = time.monotonic()
        assert "released the leader lease" in old.text()
        # Released: the old leader's name is gone from the Lease the moment it has exited.
        assert holder(release) in {None, new_id}
        install.wait_until(
            "the standby to take the released Lease",
            lambda: holder(release) == new_id,
            timeout=TIMING.lease_duration + SLACK + 10,
            interval=0.1,
        )
        took = time.monotonic() - exited
        print(
            f"handover {took:.2f}s after the old leader exited "
            f"({exited - signalled:.2f}s after SIGTERM; lease {TIMING.lease_duration:g}s)"
        )
        # The Lease was released before the exit: one retry period, not a whole lease.
        assert took <= TIMING.retry_period + SLACK
        # Well within the chart's terminationGracePeriodSeconds (30): no SIGKILL needed.
        assert exited - signalled < 10
