"""``libvirt``: a local (or remote) QEMU/KVM virtual machine per trial, via libvirt-python.

Preset (``providers/libvirt.yaml``)::

    kind: libvirt
    uri: qemu:///system
    pool: default                      # storage pool for the qcow2 overlays
    network: default                   # libvirt network (DHCP leases give the address)
    images:                            # per card snapshot: base qcow2 paths (read-only)
      default: /var/lib/libvirt/images/debian-12-genericcloud-amd64.qcow2
    memory_gb: 4
    cpus: 2
    disk_gb: 20
    seed_dir: /var/lib/libvirt/images  # where NoCloud seed ISOs go (qemu must read them)
    ssh_user: ale

Each trial gets a qcow2 overlay on the snapshot's base image (created in the pool with a
backing store, so the base is never written), a cloud-init NoCloud seed carrying the
ephemeral public key, and a domain tagged in its ``<metadata>`` with ``ale-managed``,
``ale-run-id`` and ``ale-expiry``. The address comes from the network's DHCP leases, else
the guest agent. Release destroys and undefines the domain and deletes its overlay and
seed, always; ``--ale-sweep`` finds domains by their metadata. KVM when ``/dev/kvm`` is
usable, TCG (plain emulation, slower) otherwise. ``uri: test:///default`` is libvirt's
in-process test driver, used by this project's tests.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import quoteattr

import libvirt
from pydantic import Field

from ..errors import InfrastructureError
from ..sandbox import SandboxSpec
from ..typed_options import GpuFlag
from .cloudinit import seed_iso
from .vm_base import Instance, VmOptions, VmProvider

NS = "https://pytest-ale.dev/libvirt/1"


def domain_type(conn: libvirt.virConnect) -> str:
    if conn.getType() == "TEST":
        return "test"
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"


class LibvirtOptions(GpuFlag, VmOptions):
    """``providers/libvirt.yaml``; ``memory_gb``, ``cpus`` and ``disk_gb`` win over the card's."""

    uri: str = "qemu:///system"
    #: the storage pool for the qcow2 overlays
    pool: str = "default"
    #: the libvirt network (its DHCP leases give the address)
    network: str = "default"
    memory_gb: float | None = Field(None, gt=0)
    cpus: int | None = Field(None, gt=0)
    disk_gb: int | None = Field(None, gt=0)
    #: where NoCloud seed ISOs go (qemu must be able to read them)
    seed_dir: str | None = None


class LibvirtProvider(VmProvider):
    """QEMU/KVM domains on a libvirt host."""

    name = "libvirt"
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux"})
    Options = LibvirtOptions
    options: LibvirtOptions

    def __init__(self, options: LibvirtOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        uri = self.options.uri
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise InfrastructureError(f"libvirt: cannot connect to {uri}: {exc}") from exc
        self.seed_dir = Path(self.options.seed_dir or Path(tempfile.gettempdir()) / "pytest-ale-libvirt")

    # -- the hooks ---------------------------------------------------------------------
    def create(self, spec: SandboxSpec, name: str, image: str, labels: dict[str, str]) -> Instance:
        pool = self.conn.storagePoolLookupByName(self.options.pool)
        disk_gb = int(self.options.disk_gb or spec.disk_gb or 20)
        volume = pool.createXML(_overlay_xml(name, image, disk_gb), 0)
        seed = self.seed_dir / f"{name}-seed.iso"
        try:
            self.seed_dir.mkdir(parents=True, exist_ok=True)
            seed.write_bytes(seed_iso(name, name, self.ssh_user, self.public_key, self.agent_user))
            xml = self._domain_xml(spec, name, volume.path(), str(seed), labels)
            domain = self.conn.defineXML(xml)
            instance = Instance(domain.UUIDString(), name, self.conn.getURI(), data={"seed": str(seed)})
            try:
                domain.create()
            except libvirt.libvirtError:
                self.delete(instance)
                raise
            return instance
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                volume.delete(0)
            seed.unlink(missing_ok=True)
            raise

    def _domain_xml(self, spec: SandboxSpec, name: str, disk: str, seed: str, labels: dict[str, str]) -> str:
        memory_mib = int(float(self.options.memory_gb or spec.memory_gb or 4) * 1024)
        cpus = int(self.options.cpus or spec.cpus or 2)
        attrs = " ".join(f"{key}={quoteattr(value)}" for key, value in labels.items())
        return f"""<domain type='{domain_type(self.conn)}'>
  <name>{name}</name>
  <metadata><ale:instance xmlns:ale='{NS}' {attrs}/></metadata>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{cpus}</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file={quoteattr(disk)}/><target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/><source file={quoteattr(seed)}/>
      <target dev='sda' bus='sata'/><readonly/>
    </disk>
    <interface type='network'>
      <source network={quoteattr(self.options.network)}/><model type='virtio'/>
    </interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pty'/><console type='pty'/>
  </devices>
</domain>"""

    def wait_address(self, instance: Instance, timeout_s: float) -> str:
        domain = self.conn.lookupByUUIDString(instance.id)
        deadline = time.monotonic() + timeout_s
        sources = (
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
        )
        while True:
            for source in sources:
                with contextlib.suppress(libvirt.libvirtError):
                    for nic in (domain.interfaceAddresses(source) or {}).values():
                        for addr in nic.get("addrs") or []:
                            if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                                return str(addr["addr"])
            if time.monotonic() > deadline:
                raise InfrastructureError(f"libvirt: {instance.name} got no address in {timeout_s:.0f}s")
            time.sleep(2)

    def delete(self, instance: Instance) -> None:
        try:
            domain = self.conn.lookupByUUIDString(instance.id)
        except libvirt.libvirtError:
            domain = None
        disks: list[str] = []
        if domain is not None:
            tree = ET.fromstring(domain.XMLDesc(0))
            disks = [s.get("file", "") for s in tree.findall("./devices/disk[@device='disk']/source")]
            seeds = [s.get("file", "") for s in tree.findall("./devices/disk[@device='cdrom']/source")]
            instance.data.setdefault("seed", seeds[0] if seeds else "")
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        for path in disks:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.storageVolLookupByPath(path).delete(0)
        if instance.data.get("seed"):
            Path(instance.data["seed"]).unlink(missing_ok=True)

    def list_managed(self) -> list[tuple[Instance, dict[str, str]]]:
        found = []
        for domain in self.conn.listAllDomains(0):
            try:
                meta = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS)
            except libvirt.libvirtError:
                continue  # not ours
            labels = dict(ET.fromstring(meta).attrib)
            found.append((Instance(domain.UUIDString(), domain.name(), self.conn.getURI()), labels))
        return found

    def close(self) -> None:
        super().close()
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()


def _overlay_xml(name: str, base: str, disk_gb: int) -> str:
    return f"""<volume>
  <name>{name}.qcow2</name>
  <capacity unit='G'>{disk_gb}</capacity>
  <target><format type='qcow2'/></target>
  <backingStore><path>{base}</path><format type='qcow2'/></backingStore>
</volume>"""
