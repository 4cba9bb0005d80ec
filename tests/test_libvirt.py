"""The ``libvirt`` provider against libvirt's in-process ``test:///default`` driver, its data
path through the real loopback sshd: overlay volume, NoCloud seed with the ephemeral key,
domain metadata labels, destroy + undefine always, and the sweep.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("libvirt")
pytest.importorskip("pycdlib")
pytest.importorskip("asyncssh")

import libvirt
import yaml

from pytest_ale.providers.cloudinit import read_seed
from pytest_ale.providers.libvirt import NS, LibvirtProvider
from pytest_ale.sandbox import SandboxSpec
from tests.conformance.cases import libvirt_options
from tests.conformance.env import Env
from tests.conformance.sshd import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


def make(env: Env) -> LibvirtProvider:
    provider = LibvirtProvider(libvirt_options(env))
    env.sshd.authorize(provider.public_key)
    return provider


def spec(run_id: str = "lv-run", **extra) -> SandboxSpec:
    return SandboxSpec(run_id=run_id, trial_id="tests/test_libvirt.py::t", **extra)


def domains() -> dict[str, bool]:
    conn = libvirt.open("test:///default")
    try:
        return {d.name(): bool(d.isActive()) for d in conn.listAllDomains(0)}
    finally:
        conn.close()


def test_domain_overlay_seed_and_metadata_then_all_removed(env: Env) -> None:
    provider = make(env)
    sandbox = provider.acquire(spec("Lv.Run"))
    instance = provider.held[sandbox]
    name = instance.name
    domain = provider.conn.lookupByName(name)
    tree = ET.fromstring(domain.XMLDesc(0))
    assert tree.get("type") == "test"
    labels = ET.fromstring(domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS)).attrib
    assert labels["ale-managed"] == "true" and labels["ale-run-id"] == "lv-run"
    volume = provider.conn.storagePoolLookupByName("default-pool").storageVolLookupByName(f"{name}.qcow2")
    assert "<backingStore>" in volume.XMLDesc(0) and "/default-pool/base.qcow2" in volume.XMLDesc(0)
    seed = Path(instance.data["seed"])
    files = read_seed(seed.read_bytes())
    assert files["user-data"].startswith("#cloud-config")
    user, agent = yaml.safe_load(files["user-data"])["users"]
    assert user["ssh_authorized_keys"] == [provider.public_key] and "NOPASSWD" in user["sudo"]
    # the agent's account: no sudo, no key, never the SSH user
    assert agent["name"] == provider.agent_user != user["name"]
    assert agent["sudo"] is False and "ssh_authorized_keys" not in agent
    assert name in files["meta-data"]
    assert domains()[name] is True
    assert sandbox.exec(["echo", "via libvirt + sshd"]).stdout == "via libvirt + sshd\n"
    provider.release(sandbox)
    assert name not in domains()
    assert not seed.exists()
    assert f"{name}.qcow2" not in provider.conn.storagePoolLookupByName("default-pool").listVolumes()
    provider.close()


def test_sweep_removes_expired_domains_and_nothing_else(env: Env) -> None:
    provider = make(env)
    expired = provider.acquire(spec("old-run", expiry_s=-5))
    fresh = provider.acquire(spec("new-run"))
    held = {sandbox: provider.held[sandbox] for sandbox in (expired, fresh)}
    for sandbox in (expired, fresh):  # a crash: never released
        provider.held.pop(sandbox)
        sandbox.close()
    removed = provider.sweep(None)
    assert len(removed) == 1 and held[expired].name in removed[0]
    names = set(domains())
    assert "test" in names  # the driver's own domain is not ours
    assert held[fresh].name in names and held[expired].name not in names
    assert provider.sweep("new-run")
    assert held[fresh].name not in domains()
    provider.close()
