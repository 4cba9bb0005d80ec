"""What the VM providers (gcp, aws, libvirt) share: labels, images, acquire, release, sweep.

A VM provider only says how to *create* an instance (falling through zones, subnets or
machine types on capacity and quota errors), how to find its address, how to *delete*
it and how to *list* what it made. This base does the rest the same way for all:

- one ephemeral SSH key pair per provider object (per run and xdist worker), private half
  in memory only; the public half goes into the instance (metadata / key pair / seed);
- every instance carries labels ``ale-managed``, ``ale-run-id``, ``ale-expiry`` (unix
  seconds), so ``--ale-sweep`` finds what a crashed run left: by run id, or expired;
- acquire = create, wait for an address, SSH in (retrying while the machine boots),
  create the workspace; any failure after creation deletes the instance before raising;
- the provider holds each sandbox's instance (``held``); release fences the trial (and
  scrubs a machine given a shared ``root``), then deletes the instance, always (unless
  ``--ale-keep``); ``close`` releases every sandbox still held (an interrupted session).

The agent runs as ``agent_user`` (default ``agent``): an unprivileged account without sudo
or SSH key that the instance's boot creates (cloud-init, a startup script), and the
sandbox creates through sudo if the image skipped it; the SSH user (passwordless sudo)
stages, fences and grades.

Common options: ``images`` (``{snapshot: image, default: image}``) or ``image``;
``ssh_user``; ``agent_user``; ``max_output_mb`` / ``max_output_files``; ``ssh_port``;
``ssh_host`` (a template on ``{address}``, for bastions or tunnels; default the address
itself); ``boot_timeout_s``; ``root`` (put workspaces under this folder instead of the
task's path, for machines shared between trials).
"""

from __future__ import annotations

import abc
import contextlib
import re
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from ..errors import AleError, ConfigError, InfrastructureError
from ..sandbox import Provider, Sandbox, SandboxSpec, expired, run_id_matches
from .ssh import SshOptions, ephemeral_key, public_line
from .ssh_machine import end_sandbox, open_sandbox
from .ssh_sandbox import SshSandbox

MANAGED = "ale-managed"
RUN_ID = "ale-run-id"
EXPIRY = "ale-expiry"
TRIAL = "ale-trial"


class CapacityError(InfrastructureError):
    """No zone / subnet / machine type had capacity for the instance."""


class QuotaError(InfrastructureError):
    """The account's quota forbids another instance anywhere the preset allows."""


class VmLeakWarning(UserWarning):
    """An instance could not be deleted; ``--ale-sweep`` will find it by its labels."""


def label_value(text: str) -> str:
    """A value every cloud accepts as a label: lowercase ``[a-z0-9_-]``, at most 63 chars."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower())[:63].strip("-") or "none"


def vm_labels(spec: SandboxSpec) -> dict[str, str]:
    return {
        MANAGED: "true",
        RUN_ID: label_value(spec.run_id),
        EXPIRY: str(int(time.time() + spec.expiry_s)),
        TRIAL: label_value(spec.trial_id.rsplit("/", 1)[-1])[:63],
    }


def sweepable(labels: Mapping[str, str], run_id: str | None, now: float | None = None) -> bool:
    """Whether an instance with ``labels`` is ours and belongs to ``run_id`` (or expired)."""
    if labels.get(MANAGED) != "true":
        return False
    if run_id is not None:
        return run_id_matches(labels.get(RUN_ID), run_id, label_value)
    return expired(labels.get(EXPIRY), now)


@dataclass
class Instance:
    """One machine a VM provider made."""

    id: str
    name: str
    where: str = ""
    address: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class VmOptions(SshOptions):
    """What every VM provider's preset takes (each adds its own)."""

    #: ``{snapshot: image, default: image}``: the image for each card snapshot
    images: dict[str, str] = Field(default_factory=dict)
    #: the image for every task (when ``images`` has none for it)
    image: str | None = None
    #: the SSH user (passwordless sudo) that stages, fences and grades
    ssh_user: str = "ale"
    #: the unprivileged account the agent runs as (made at boot)
    agent_user: str = "agent"
    #: a template on ``{address}``, for bastions or tunnels
    ssh_host: str = "{address}"
    ssh_port: int = 22
    boot_timeout_s: float = 600

    @model_validator(mode="after")
    def _agent_not_privileged(self) -> Self:
        if self.agent_user in (self.ssh_user, "root"):
            raise ValueError(
                f"agent_user {self.agent_user!r} must be another account than the SSH user "
                f"({self.ssh_user}) and root: the agent must not hold their rights"
            )
        return self


class VmProvider(Provider):
    """Base of the cloud and VM providers; subclasses implement the five hooks below."""

    Options: ClassVar[type[VmOptions]] = VmOptions
    options: VmOptions

    def __init__(self, options: VmOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.key = ephemeral_key()
        self.public_key = public_line(self.key)
        self.ssh_user = self.options.ssh_user
        self.agent_user = self.options.agent_user

    # -- hooks -------------------------------------------------------------------------
    @abc.abstractmethod
    def create(self, spec: SandboxSpec, name: str, image: str, labels: dict[str, str]) -> Instance:
        """Start one instance, falling through the preset's alternatives on capacity and
        quota errors; raise ``CapacityError`` / ``QuotaError`` when none is left."""

    @abc.abstractmethod
    def wait_address(self, instance: Instance, timeout_s: float) -> str:
        """Wait until the instance runs; its address for SSH."""

    @abc.abstractmethod
    def delete(self, instance: Instance) -> None:
        """Delete (terminate, destroy and undefine) the instance and what only it used."""

    @abc.abstractmethod
    def list_managed(self) -> list[tuple[Instance, dict[str, str]]]:
        """Every live instance with an ``ale-managed`` label, with its labels."""

    def cleanup(self) -> None:
        """End of the session: remove provider-wide resources (key pairs, groups)."""

    # -- shared behaviour --------------------------------------------------------------
    def image_for(self, spec: SandboxSpec) -> str:
        snapshot = str(spec.extra.get("snapshot") or "")
        images = self.options.images
        image = images.get(snapshot) or images.get("default") or self.options.image
        if not image:
            want = f"snapshot {snapshot!r}" if snapshot else "tasks without a snapshot"
            raise ConfigError(
                f"{self.name} preset: no image for {want}; add it under `images:` "
                f"(or set `image:`) in providers/{self.name}.yaml"
            )
        return str(image)

    def instance_name(self, spec: SandboxSpec) -> str:
        return f"ale-{label_value(spec.run_id)[:30]}-{uuid.uuid4().hex[:8]}".strip("-")

    def acquire(self, spec: SandboxSpec) -> Sandbox:
        image = self.image_for(spec)
        labels = vm_labels(spec)
        try:
            instance = self.create(spec, self.instance_name(spec), image, labels)
        except AleError:
            raise
        except Exception as exc:
            raise InfrastructureError(f"{self.name}: creating an instance failed: {exc}") from exc
        try:
            sandbox = self._connect(spec, instance)
        except BaseException as exc:
            self._delete(instance)
            if isinstance(exc, AleError) or not isinstance(exc, Exception):
                raise
            raise InfrastructureError(f"{self.name}: instance {instance.name} unusable: {exc}") from exc
        self.held[sandbox] = instance
        return sandbox

    def _connect(self, spec: SandboxSpec, instance: Instance) -> SshSandbox:
        boot = self.options.boot_timeout_s
        address = self.wait_address(instance, boot)
        instance.address = address
        host = self.options.ssh_host.format(address=address)
        target = self.options.target(host, self.options.ssh_port, self.ssh_user, self.key)
        root = self.options.root.rstrip("/") + f"/{instance.name}" if self.options.root else None
        return open_sandbox(
            spec,
            target,
            trial_root=root,
            name=f"{self.name} instance {instance.name} ({instance.where})",
            agent_user=self.agent_user,
            create_agent=True,
            sudo=self.ssh_user != "root",
            max_output_mb=self.options.max_output_mb,
            max_output_files=self.options.max_output_files,
            connect_s=boot,
        )

    def release(self, sandbox: Sandbox) -> None:
        """Fence the trial (and scrub a machine given a shared ``root``), close the
        connection, then delete the instance; ``keep`` keeps it (and its files)."""
        instance = self.held.pop(sandbox, None)
        if instance is None or not isinstance(sandbox, SshSandbox):
            sandbox.close()
            return
        try:
            shared = bool(self.options.root) and not self.options.keep
            end_sandbox(sandbox, scrub=shared)
        finally:
            self._delete(instance)

    def _delete(self, instance: Instance) -> None:
        if self.options.keep:
            return
        try:
            self.delete(instance)
        except Exception as exc:  # never mask the trial's own outcome; sweep finds it later
            warnings.warn(
                VmLeakWarning(
                    f"{self.name}: could not delete {instance.name}: {exc}; "
                    "run `pytest --ale-sweep` to remove it"
                ),
                stacklevel=2,
            )

    def sweep(self, run_id: str | None = None) -> list[str]:
        removed = []
        for instance, labels in self.list_managed():
            if sweepable(labels, run_id):
                self.delete(instance)
                removed.append(f"{instance.name} ({instance.where})")
        return removed

    def close(self) -> None:
        """Release every sandbox still held (deleting its instance), then ``cleanup``."""
        super().close()
        with contextlib.suppress(Exception):
            self.cleanup()
