"""The ``gcp`` provider's control plane against the loopback GCE FAKE (``tests/fakes/gce.py``;
no GCE emulator exists), its data path through the real loopback sshd: labels, SSH key
metadata, zone fallback on stock-outs, quota errors, delete always, and the sweep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("google.cloud.compute_v1")
pytest.importorskip("asyncssh")

from pytest_ale.providers.gcp import GcpProvider
from pytest_ale.providers.vm_base import CapacityError, QuotaError
from pytest_ale.sandbox import SandboxSpec
from tests.conformance.cases import gcp_options
from tests.conformance.env import Env
from tests.conformance.sshd import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
ZONES = ["fake-zone-a", "fake-zone-b", "fake-zone-c"]


@pytest.fixture
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


def make(env: Env, **extra: Any) -> GcpProvider:
    return GcpProvider(gcp_options(env, zones=ZONES, **extra))


def spec(run_id: str = "gcp-run", **extra: Any) -> SandboxSpec:
    return SandboxSpec(run_id=run_id, trial_id="tests/test_gcp.py::t", **extra)


def test_instance_has_labels_and_key_metadata_and_is_deleted(env: Env) -> None:
    provider = make(env)
    sandbox = provider.acquire(spec("My.Run"))
    instance = provider.held[sandbox]
    data = env.gce.instances[(instance.where, instance.name)]
    assert data["labels"]["ale-managed"] == "true" and data["labels"]["ale-run-id"] == "my-run"
    assert int(data["labels"]["ale-expiry"]) > 0
    metadata = {item["key"]: item["value"] for item in data["metadata"]["items"]}
    assert metadata["ssh-keys"] == f"root:{provider.public_key}"
    assert metadata["block-project-ssh-keys"] == "true"
    # the agent's account is made at boot (and by the sandbox if the image has no guest agent)
    assert f"useradd -m -U -s /bin/bash {provider.agent_user}" in metadata["startup-script"]
    assert data["machineType"].endswith("machineTypes/e2-standard-4")
    assert sandbox.exec(["echo", "via fake + sshd"]).stdout == "via fake + sshd\n"
    provider.release(sandbox)
    assert env.gce.instances == {}
    provider.close()


def test_stock_out_falls_through_to_the_next_zone(env: Env) -> None:
    env.gce.capacity_zones = {"fake-zone-a", "fake-zone-b"}
    provider = make(env)
    sandbox = provider.acquire(spec())
    instance = provider.held[sandbox]
    try:
        assert instance.where == "fake-zone-c"
        inserts = [path for action, path in env.gce.calls if action == "insert"]
        assert [p.split("/zones/")[1].split("/")[0] for p in inserts] == ZONES
        assert list(env.gce.instances) == [("fake-zone-c", instance.name)]
    finally:
        provider.release(sandbox)
        provider.close()
    assert env.gce.instances == {}


def test_no_zone_with_capacity_is_a_capacity_error_leaving_nothing(env: Env) -> None:
    env.gce.capacity_zones = set(ZONES[:2])
    env.gce.quota_zones = {ZONES[2]}
    provider = make(env)
    with pytest.raises(CapacityError, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        provider.acquire(spec())
    assert env.gce.instances == {}
    provider.close()


def test_quota_everywhere_is_a_quota_error(env: Env) -> None:
    env.gce.quota_zones = set(ZONES)
    provider = make(env)
    with pytest.raises(QuotaError, match="QUOTA_EXCEEDED"):
        provider.acquire(spec())
    assert env.gce.instances == {}
    provider.close()


def test_sweep_removes_expired_instances_and_nothing_else(env: Env) -> None:
    env.gce.add_foreign("fake-zone-a", "someone-elses-vm", {"team": "x"})
    env.gce.add_foreign("fake-zone-a", "unmanaged-but-expiry", {"ale-expiry": "1"})
    provider = make(env)
    expired = provider.acquire(spec("old-run", expiry_s=-5))
    fresh = provider.acquire(spec("new-run"))
    held = {sandbox: provider.held[sandbox] for sandbox in (expired, fresh)}
    for sandbox in (expired, fresh):  # a crash: never released
        provider.held.pop(sandbox)
        sandbox.close()
    removed = make(env).sweep(None)
    assert len(removed) == 1 and held[expired].name in removed[0]
    names = {name for _zone, name in env.gce.instances}
    assert names == {"someone-elses-vm", "unmanaged-but-expiry", held[fresh].name}
    assert make(env).sweep("new-run")
    assert {name for _zone, name in env.gce.instances} == {"someone-elses-vm", "unmanaged-but-expiry"}
    provider.close()
