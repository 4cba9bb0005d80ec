"""``gcp``: one Compute Engine instance per trial, via ``google-cloud-compute`` (no gcloud).

Preset (``providers/gcp.yaml``)::

    kind: gcp
    project: my-eval-project
    zones: [us-central1-a, us-central1-b, us-east1-c]   # fallback order
    machine_type: n2-standard-4        # or machine_types: [...] (fallback order per zone)
    images:                            # per card snapshot; "snapshot:" for disk snapshots
      default: projects/debian-cloud/global/images/family/debian-12
      my-office-snapshot: snapshot:projects/my-eval-project/global/snapshots/office
    disk_gb: 50
    disk_type: pd-balanced
    network: global/networks/default   # subnetwork: regions/R/subnetworks/S
    address: public                    # or private (Cloud VPN / same VPC)
    gpu: {type: nvidia-tesla-t4, count: 1}   # what a GPU task's instance gets (the default)
    gpu_machine_types: [n1-standard-4]       # machine types that take it (default)
    ssh_user: ale

A task whose card asks for a GPU gets the ``gpu`` accelerator on a ``gpu_machine_types``
instance (falling through them like ``machine_types``), with ``onHostMaintenance:
TERMINATE``, as GCE requires of GPU instances.

The ephemeral public key goes in the instance's ``ssh-keys`` metadata (project keys
blocked). Labels: ``ale-managed``, ``ale-run-id``, ``ale-expiry``. A zone out of capacity
(``ZONE_RESOURCE_POOL_EXHAUSTED``, ``503``/``429``) or over quota (``403 quotaExceeded``,
``QUOTA_EXCEEDED``) falls through to the next machine type, then zone; when none is left
the trial gets a ``CapacityError`` / ``QuotaError`` (infrastructure: retried, then an
error). Instances are deleted on release, always; ``--ale-sweep`` finds them by label.

Operations are waited on with a ``ZoneOperationsClient`` built with the same client
options, because ``Operation.result()`` polls through an internal client that ignores a
custom ``api_endpoint`` (which the loopback test fake needs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from pydantic import Field

from ..errors import InfrastructureError
from ..sandbox import SandboxSpec
from ..typed_options import OptionsModel
from .cloudinit import agent_user_script
from .vm_base import MANAGED, CapacityError, Instance, QuotaError, VmOptions, VmProvider

CAPACITY_CODES = {
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED",
    "UNSUPPORTED_OPERATION",
}
QUOTA_CODES = {"QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"}


class GpuOptions(OptionsModel):
    """The accelerator a GPU task's instance gets (``gpu: {type: ..., count: ...}``)."""

    type: str = "nvidia-tesla-t4"
    count: int = Field(1, gt=0)


class GcpOptions(VmOptions):
    """``providers/gcp.yaml``."""

    project: str
    #: fallback order (``zone`` for one)
    zones: list[str] = Field(default_factory=list)
    zone: str = "us-central1-a"
    #: fallback order per zone (``machine_type`` for one), for tasks without a GPU
    machine_types: list[str] = Field(default_factory=list)
    machine_type: str = "e2-standard-4"
    #: the accelerator of GPU tasks, and the machine types it attaches to (N1 for T4s)
    gpu: GpuOptions = Field(default_factory=GpuOptions)
    gpu_machine_types: list[str] = Field(default_factory=lambda: ["n1-standard-4"])
    disk_gb: int | None = Field(None, gt=0)
    disk_type: str | None = None
    network: str = "global/networks/default"
    subnetwork: str | None = None
    address: Literal["public", "private"] = "public"
    #: e.g. the loopback test fake; with ``anonymous: true``, no credentials
    api_endpoint: str | None = None
    anonymous: bool = False
    operation_polls: int = Field(60, gt=0)


class GcpProvider(VmProvider):
    """Compute Engine instances from an image or snapshot per card snapshot."""

    name = "gcp"
    #: GPU tasks get the ``gpu`` accelerator on a ``gpu_machine_types`` instance
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux", "gpu"})
    Options = GcpOptions
    options: GcpOptions

    def __init__(self, options: GcpOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.project = self.options.project
        self.zones = list(self.options.zones or [self.options.zone])
        self.types = list(self.options.machine_types or [self.options.machine_type])
        kwargs: dict[str, Any] = {"transport": "rest"}
        if self.options.api_endpoint:
            kwargs["client_options"] = {"api_endpoint": self.options.api_endpoint}
        if self.options.anonymous:
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()
        self.instances = compute_v1.InstancesClient(**kwargs)
        self.operations = compute_v1.ZoneOperationsClient(**kwargs)

    # -- the hooks ---------------------------------------------------------------------
    def create(self, spec: SandboxSpec, name: str, image: str, labels: dict[str, str]) -> Instance:
        tried: list[str] = []
        quota_only = True
        for zone in self.zones:
            for machine in self.options.gpu_machine_types if spec.gpu else self.types:
                body = self._body(spec, name, image, labels, zone, machine)
                try:
                    op = self.instances.insert(project=self.project, zone=zone, instance_resource=body)
                    error = self._wait(zone, op.name)
                except gexc.Forbidden as exc:
                    if "quota" not in str(exc).lower():
                        raise InfrastructureError(f"gcp: insert in {zone} refused: {exc}") from exc
                    error = "QUOTA_EXCEEDED"
                except (gexc.ServiceUnavailable, gexc.TooManyRequests) as exc:
                    error = f"RESOURCE_POOL_EXHAUSTED ({exc.code})"
                if error is None:
                    return Instance(name, name, zone, data={"machine": machine})
                code = error.split()[0]
                if code in QUOTA_CODES or code in CAPACITY_CODES:
                    quota_only = quota_only and code in QUOTA_CODES
                    tried.append(f"{machine} in {zone}: {error}")
                    self._forget(zone, name)
                    continue
                self._forget(zone, name)
                raise InfrastructureError(f"gcp: creating {name} in {zone} failed: {error}")
        kind = QuotaError if quota_only else CapacityError
        raise kind("gcp: no zone/machine type could start an instance: " + "; ".join(tried))

    def _body(
        self, spec: SandboxSpec, name: str, image: str, labels: dict[str, str], zone: str, machine: str
    ) -> compute_v1.Instance:
        o = self.options
        params = compute_v1.AttachedDiskInitializeParams(labels=labels)
        if image.startswith("snapshot:"):
            params.source_snapshot = image.removeprefix("snapshot:")
        else:
            params.source_image = image
        if o.disk_gb or spec.disk_gb:
            params.disk_size_gb = int(o.disk_gb or spec.disk_gb or 0)
        if o.disk_type:
            params.disk_type = f"zones/{zone}/diskTypes/{o.disk_type}"
        nic = compute_v1.NetworkInterface(network=o.network)
        if o.subnetwork:
            nic.subnetwork = o.subnetwork
        if o.address == "public":
            nic.access_configs = [compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
        body = compute_v1.Instance(
            name=name,
            machine_type=f"zones/{zone}/machineTypes/{machine}",
            labels=labels,
            disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=params)],
            network_interfaces=[nic],
            metadata=compute_v1.Metadata(
                items=[
                    compute_v1.Items(key="ssh-keys", value=f"{self.ssh_user}:{self.public_key}"),
                    compute_v1.Items(key="block-project-ssh-keys", value="true"),
                    compute_v1.Items(key="startup-script", value=agent_user_script(self.agent_user)),
                ]
            ),
            # TERMINATE: GCE cannot live-migrate an instance with a GPU
            scheduling=compute_v1.Scheduling(automatic_restart=False, on_host_maintenance="TERMINATE"),
        )
        if spec.gpu:
            body.guest_accelerators = [
                compute_v1.AcceleratorConfig(
                    accelerator_type=f"zones/{zone}/acceleratorTypes/{o.gpu.type}",
                    accelerator_count=o.gpu.count,
                )
            ]
        return body

    def _wait(self, zone: str, operation: str) -> str | None:
        """Wait for a zone operation; its first error code (and message), or None."""
        for _ in range(self.options.operation_polls):
            op = self.operations.wait(project=self.project, zone=zone, operation=operation)
            if op.status == compute_v1.Operation.Status.DONE:
                errors = list(op.error.errors) if op.error else []
                return f"{errors[0].code} {errors[0].message}" if errors else None
        raise InfrastructureError(f"gcp: operation {operation} in {zone} did not finish")

    def _forget(self, zone: str, name: str) -> None:
        """After a failed insert, make sure no half-made instance stays."""
        with contextlib.suppress(gexc.NotFound, InfrastructureError):
            self.delete(Instance(name, name, zone))

    def wait_address(self, instance: Instance, timeout_s: float) -> str:
        got = self.instances.get(project=self.project, zone=instance.where, instance=instance.name)
        if got.status not in ("RUNNING", "PROVISIONING", "STAGING"):
            raise InfrastructureError(f"gcp: {instance.name} is {got.status}")
        nic = got.network_interfaces[0]
        if self.options.address == "public" and nic.access_configs:
            return nic.access_configs[0].nat_i_p
        return nic.network_i_p

    def delete(self, instance: Instance) -> None:
        try:
            op = self.instances.delete(project=self.project, zone=instance.where, instance=instance.name)
        except gexc.NotFound:
            return
        error = self._wait(instance.where, op.name)
        if error:
            raise InfrastructureError(f"gcp: deleting {instance.name} failed: {error}")

    def list_managed(self) -> list[tuple[Instance, dict[str, str]]]:
        found = []
        pages = self.instances.aggregated_list(
            request=compute_v1.AggregatedListInstancesRequest(
                project=self.project, filter=f"labels.{MANAGED} = true"
            )
        )
        for zone_path, scoped in pages:
            for data in scoped.instances:
                labels = dict(data.labels)
                if MANAGED in labels:
                    found.append((Instance(data.name, data.name, zone_path.rpartition("/")[2]), labels))
        return found
