"""The built-in providers the shipped conformance suite (``pytest_ale.testing``) runs
against here, one ``Case`` each, with what is specific to this repository's CI: the
loopback sshd, moto, the GCE fake, libvirt's test driver (``env.py``).

A new provider joins with one line in ``CASES`` (its factory may live anywhere)::

    Case("docker", make_docker, docker_gone, skip=docker_skip),

``make(env, **options)`` builds a ready provider, ``options`` added to its preset (its data
path wired to the loopback sshd where it is a VM provider); ``gone(env, provider, held)``
says whether what the provider held for a sandbox (``provider.held[sandbox]`` right after
``acquire``: its trial folder, container, instance, host lock) is gone, checked in the
control plane's own state (the engine, moto, the GCE fake, libvirt); ``skip()`` gives a
reason to skip (missing engine), unless ``ALE_REQUIRE_<NAME>=1``. ``target(env)`` makes
the ``pytest_ale.testing.Target`` the checks take.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_ale.sandbox import Provider
from pytest_ale.testing import Target

from .env import Env
from .sshd import available as sshd_unavailable


@dataclass
class Case:
    name: str
    make: Callable[..., Provider]
    gone: Callable[[Env, Provider, Any], bool]
    skip: Callable[[], str | None] = lambda: None

    def target(self, env: Env) -> Target:
        make, gone = functools.partial(self.make, env), functools.partial(self.gone, env)
        return Target(self.name, make, gone, self.skip)


def _module_missing(*modules: str) -> Callable[[], str | None]:
    def check() -> str | None:
        import importlib.util

        for module in modules:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install -e '.[dev]')"
        return sshd_unavailable()

    return check


# -- local ---------------------------------------------------------------------------------
def make_local(env: Env, **extra: Any) -> Provider:
    from pytest_ale.providers.local import LocalProvider

    return LocalProvider({"root": str(env.folder("local")), **extra})


def local_gone(env: Env, provider: Provider, held: Any) -> bool:
    """The trial folder is gone."""
    return not Path(held).exists()


# -- static --------------------------------------------------------------------------------
def static_options(env: Env, **extra: Any) -> dict[str, Any]:
    from pytest_ale.providers.ssh import public_line

    keyfile = env.root / "static_key"
    if not keyfile.exists():
        from pytest_ale.providers.ssh import ephemeral_key

        key = ephemeral_key()
        keyfile.write_bytes(key.export_private_key("openssh"))
        keyfile.chmod(0o600)
        env.sshd.authorize(public_line(key))
    return {
        "host": "127.0.0.1",
        "port": env.sshd.port,
        "user": "root",
        "agent_user": env.agent_user,
        "key": str(keyfile),
        "host_key": env.sshd.host_key_line,
        "root": str(env.folder("static-root")),
        "lock_dir": str(env.folder("static-locks")),
        "lock_timeout_s": 20,
        **extra,
    }


def make_static(env: Env, **extra: Any) -> Provider:
    from pytest_ale.providers.static import StaticProvider

    return StaticProvider(static_options(env, **extra))


def static_gone(env: Env, provider: Provider, held: Any) -> bool:
    """The trial's folder on the (loopback) machine is gone, and the host's lock is free."""
    return not Path(held.folder).exists() and held.lock.fh is None


# -- aws (moto_server on loopback, data path through the real sshd) ----------------------
def vm_ssh_options(env: Env, name: str) -> dict[str, Any]:
    return {
        "ssh_user": "root",
        "agent_user": env.agent_user,  # cloud-init would make it on a real VM
        "ssh_host": "127.0.0.1",
        "ssh_port": env.sshd.port,
        "host_key": env.sshd.host_key_line,
        "boot_timeout_s": 30,
        "root": str(env.folder(f"{name}-vms")),
    }


def aws_options(env: Env, **extra: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": env.moto_url,
        "image": env.ami(),
        "instance_types": ["t3.large"],
        "ssh_cidr": "127.0.0.1/32",
        "group_delete_wait_s": 0,
        **vm_ssh_options(env, "aws"),
        **extra,
    }


def make_aws(env: Env, **extra: Any) -> Provider:
    from pytest_ale.providers.aws import AwsProvider

    provider = AwsProvider(aws_options(env, **extra))
    env.sshd.authorize(provider.public_key)  # what cloud-init does with the key pair on EC2
    return provider


def aws_state(env: Env, instance_id: str) -> str:
    reply = env.ec2().describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


def aws_gone(env: Env, provider: Provider, held: Any) -> bool:
    return aws_state(env, held.id) in ("shutting-down", "terminated")


# -- gcp (the loopback GCE fake, data path through the real sshd) -------------------------
def gcp_options(env: Env, **extra: Any) -> dict[str, Any]:
    return {
        "project": "ale-test",
        "zones": ["fake-zone-a", "fake-zone-b"],
        "machine_types": ["e2-standard-4"],
        "image": "projects/debian-cloud/global/images/family/debian-12",
        "api_endpoint": env.gce.url,
        "anonymous": True,
        **vm_ssh_options(env, "gcp"),
        **extra,
    }


def make_gcp(env: Env, **extra: Any) -> Provider:
    from pytest_ale.providers.gcp import GcpProvider

    return GcpProvider(gcp_options(env, **extra))  # the fake's "guest agent" authorizes the key


def gcp_gone(env: Env, provider: Provider, held: Any) -> bool:
    return (held.where, held.name) not in env.gce.instances


# -- libvirt (the in-process test:///default driver, data path through the real sshd) -----
def libvirt_options(env: Env, **extra: Any) -> dict[str, Any]:
    return {
        "uri": "test:///default",
        "pool": "default-pool",
        "image": "/default-pool/base.qcow2",
        "seed_dir": str(env.folder("libvirt-seeds")),
        **vm_ssh_options(env, "libvirt"),
        **extra,
    }


def make_libvirt(env: Env, **extra: Any) -> Provider:
    from pytest_ale.providers.libvirt import LibvirtProvider

    provider = LibvirtProvider(libvirt_options(env, **extra))
    env.sshd.authorize(provider.public_key)  # what cloud-init does with the NoCloud seed
    return provider


def libvirt_gone(env: Env, provider: Provider, held: Any) -> bool:
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        names = [domain.name() for domain in conn.listAllDomains(0)]
        volumes = conn.storagePoolLookupByName("default-pool").listVolumes()
    finally:
        conn.close()
    name = held.name
    return name not in names and f"{name}.qcow2" not in volumes


def make_docker(env: Env, **extra: Any) -> Provider:
    from pytest_ale.providers.docker import DockerProvider

    return DockerProvider(extra)


def docker_gone(env: Env, provider: Any, held: Any) -> bool:
    """The container is gone from the engine (removal runs in the background: wait for it)."""
    import docker

    provider.guard.wait()
    client = docker.from_env(timeout=30)
    try:
        return not client.api.containers(all=True, filters={"id": held})
    finally:
        client.close()


def docker_skip() -> str | None:
    """Skip unless a Docker engine answers (``ALE_REQUIRE_DOCKER=1`` turns this into a failure)."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"no Docker engine answers: {exc}"
    return None


CASES: list[Case] = [
    Case("local", make_local, local_gone),
    Case("static", make_static, static_gone, skip=_module_missing("asyncssh")),
    Case("aws", make_aws, aws_gone, skip=_module_missing("asyncssh", "boto3", "moto")),
    Case("gcp", make_gcp, gcp_gone, skip=_module_missing("asyncssh", "google.cloud.compute_v1")),
    Case("libvirt", make_libvirt, libvirt_gone, skip=_module_missing("asyncssh", "libvirt", "pycdlib")),
    Case("docker", make_docker, docker_gone, skip=docker_skip),
]
