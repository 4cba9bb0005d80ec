"""``docker``: one fresh container per trial on a Docker engine, through the Docker SDK.

Build the sandbox image once (no registry needed; see ``image``)::

    python -m pytest_ale.providers.docker.image build    # or: pytest-ale-image build
    pytest tasks --ale-provider docker --ale-agent oracle

Each container is labelled (run id, test id, expiry as epoch seconds, the owning pytest
process as host/pid/start), limited (CPUs and memory from the task card, else the preset;
a PID cap), has no network unless the card or preset allows it, and runs ``docker-init``
as PID 1 so orphans are reaped. The container itself only sleeps; every command is an
exec, as the non-root user ``agent`` unless asked otherwise. Host Unix sockets in
``SandboxSpec.sockets`` (the model gateway's door) are bind-mounted at their sandbox
paths.

The agent has no capabilities and cannot gain any: the container drops them all
(``cap_drop=ALL``) but the few root-side tooling needs (``root_caps``: ``CHOWN`` to give
staged folders to the agent, ``DAC_OVERRIDE`` and ``FOWNER`` so graders and collection
read, move and remove whatever the agent wrote, whatever its modes), which a uid-1000
process never holds, and ``no-new-privileges`` makes setuid and file-capability binaries
inert. An agent user of ``root`` is refused unless ``unsafe_root_agent: true`` (then the
agent can undo all of this and its scores prove nothing).

A timeout kills the command's whole process tree (an environment marker its children
inherit); the fence (``kill_all``) runs ``kill -9 -1`` as the agent's uid, which no process
of that uid can leave or outrun; grader commands run as root (``grader_user``) after
``prepare_grading`` has moved the agent's entries of ``/tmp``, ``/var/tmp`` and ``/dev/shm``
into a root-only quarantine folder. Data moves as tar streams through the archive API with
size caps and per-member checks; ``output/`` is collected to disk as a stream, capped by
``max_output_mb`` and ``max_output_files``.
Containers are removed when released, on SIGINT/SIGTERM, at exit, and by ``--ale-sweep``
(expired, or of the given run id). ``--ale-keep`` keeps them and says how to enter.

Preset options (``providers/docker.yaml`` or ``--ale-provider-opt KEY=VALUE``): ``image``,
``cpus``, ``memory_gb``, ``pids_limit``, ``network`` (allow it), ``network_mode`` (when
allowed; default ``bridge``), ``user``, ``uid``/``gid`` (the agent's, for file
ownership), ``gpu``, ``expiry_s``, ``max_input_mb``, ``max_output_mb``,
``max_output_files``, ``root_caps``, ``unsafe_root_agent``, ``base_url``.
"""

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from ...errors import InfrastructureError
from ...liveness import stamp
from ...network import relay_tar
from ...sandbox import Provider, Sandbox, SandboxSpec, expired, run_id_matches
from ...typed_options import GpuFlag, OutputCaps
from .client import (
    EXPIRY_LABEL,
    PROVIDER_LABEL,
    RUN_LABEL,
    TEST_LABEL,
    connect,
    image_missing,
)
from .guard import ContainerGuard
from .image import DEFAULT_IMAGE
from .sandbox import RELAY_DIR, DockerSandbox

OWNER_LABEL = "pytest-ale.owner"
KEEPALIVE = 'mkdir -p "$0" && chown "$1" "$0"; exec sleep 2147483647'


class DockerOptions(GpuFlag, OutputCaps):
    """``providers/docker.yaml``; a task card's ``cpus`` / ``memory_gb`` win over these."""

    image: str = DEFAULT_IMAGE
    cpus: float = Field(2, gt=0)
    memory_gb: float = Field(4, gt=0)
    pids_limit: int = 4096
    #: allow the network (``network_mode``) to every trial; cards may ask for it too
    network: bool = False
    network_mode: str = "bridge"
    #: the agent's account in the image, and its uid/gid for file ownership
    user: str = "agent"
    uid: int = 1000
    gid: int = 1000
    expiry_s: int = 6 * 3600
    max_input_mb: int = 8192
    #: the capabilities root-side tooling keeps (the agent, uid 1000, never holds any)
    root_caps: list[str] = Field(default_factory=lambda: ["CHOWN", "DAC_OVERRIDE", "FOWNER"])
    unsafe_root_agent: bool = False
    base_url: str | None = None

    @model_validator(mode="after")
    def _agent_not_root(self) -> Self:
        if (self.user in ("root", "0") or self.uid == 0) and not self.unsafe_root_agent:
            raise ValueError(
                f"the agent must not run as root (user: {self.user}, uid: "
                f"{self.uid}): it could then undo the fence and read or rewrite what grading uses. "
                "Use the image's `agent` account (the default), or set unsafe_root_agent: true if "
                "you accept untrustworthy scores"
            )
        return self


class DockerProvider(Provider):
    """Fresh containers from one image; connects to the engine on first use."""

    name = "docker"
    #: ``netproxy``: each command runs through the relay to ``SandboxSpec.proxy``
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux", "netproxy"})
    Options = DockerOptions
    options: DockerOptions

    def __init__(self, options: DockerOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._client: Any = None
        self._image_checked = False
        self._ncpu: int | None = None
        self.guard = ContainerGuard(self.remove, stop=self.release_held)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.options.base_url)
        return self._client

    # -- acquire -----------------------------------------------------------------------
    def acquire(self, spec: SandboxSpec) -> Sandbox:
        from docker.errors import APIError, ImageNotFound

        image = self.options.image
        api = self.client.api
        if not self._image_checked:
            try:
                api.inspect_image(image)
            except ImageNotFound as exc:
                raise image_missing(image) from exc
            self._image_checked = True
        name = f"ale-{_slug(spec.run_id)[:40]}-{uuid.uuid4().hex[:8]}"
        owner = f"{self.options.uid}:{self.options.gid}"
        try:
            created = api.create_container(
                image,
                entrypoint=["/bin/sh", "-c", KEEPALIVE, spec.workdir, owner],
                command=[],
                name=name,
                user="root",
                working_dir=spec.workdir,
                hostname="sandbox",
                labels=self._labels(spec),
                host_config=api.create_host_config(**self._host_config(spec)),
            )
        except ImageNotFound as exc:
            raise image_missing(image) from exc
        except APIError as exc:
            raise InfrastructureError(f"docker could not create a container from {image}: {exc}") from exc
        container_id = created["Id"]
        _open_sockets(spec.sockets.values())
        sandbox = DockerSandbox(spec, api, self.options, container_id, name)
        self.held[sandbox] = container_id
        if not self.options.keep:
            self.guard.add(container_id, name)
        try:
            api.start(container_id)
            if spec.proxy:
                api.put_archive(container_id, "/", relay_tar(RELAY_DIR))
        except APIError as exc:
            self.release(sandbox)
            raise InfrastructureError(f"docker could not start container {name}: {exc}") from exc
        return sandbox

    def _labels(self, spec: SandboxSpec) -> dict[str, str]:
        expires = int(time.time() + int(spec.expiry_s or self.options.expiry_s))
        labels = {f"pytest-ale.{_slug(k)}": str(v)[:1000] for k, v in spec.labels.items()}
        labels.update(
            {
                PROVIDER_LABEL: self.name,
                RUN_LABEL: spec.run_id,
                TEST_LABEL: spec.trial_id[:1000],
                EXPIRY_LABEL: str(expires),
                OWNER_LABEL: stamp(),  # host/pid/start of the pytest process that owns it
            }
        )
        return labels

    def _host_config(self, spec: SandboxSpec) -> dict[str, Any]:
        from docker.types import DeviceRequest, Mount

        cpus = float(spec.cpus or self.options.cpus)
        memory = int(float(spec.memory_gb or self.options.memory_gb) * 1024**3)
        network = spec.network or self.options.network
        config: dict[str, Any] = {
            "init": True,
            "nano_cpus": int(min(cpus, self._host_cpus()) * 1e9),
            "mem_limit": memory,
            "memswap_limit": memory,
            "pids_limit": self.options.pids_limit,
            "cap_drop": ["ALL"],
            "cap_add": [str(c).upper().removeprefix("CAP_") for c in self.options.root_caps],
            "security_opt": ["no-new-privileges"],
            "network_mode": self.options.network_mode if network else "none",
            "mounts": [
                Mount(target=inside, source=host, type="bind") for inside, host in spec.sockets.items()
            ],
        }
        if spec.gpu and self.options.gpu:
            config["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        return config

    def _host_cpus(self) -> int:
        if self._ncpu is None:
            try:
                self._ncpu = int(self.client.info().get("NCPU") or os.cpu_count() or 1)
            except Exception:
                self._ncpu = os.cpu_count() or 1
        return self._ncpu

    # -- release -----------------------------------------------------------------------
    def release(self, sandbox: Sandbox) -> None:
        """Close the sandbox and have its container removed (in the background while the
        run goes on, at once on a signal or at the session's end); kept with ``keep``."""
        container_id = self.held.pop(sandbox, None)
        sandbox.close()
        if container_id is not None and not self.options.keep:
            self.guard.release(container_id)

    def remove(self, container_id: str) -> None:
        """Remove one container (and its anonymous volumes) now; one already gone is fine."""
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            self.client.api.remove_container(container_id, force=True, v=True)

    def sweep(self, run_id: str | None = None) -> list[str]:
        """Remove this provider's containers of ``run_id`` and its xdist workers, or with no
        run id, those whose expiry passed (another run's live containers are never touched)."""
        now = time.time()
        removed = []
        for info in self.client.api.containers(all=True, filters={"label": f"{PROVIDER_LABEL}={self.name}"}):
            labels = info.get("Labels") or {}
            if run_id is not None:
                doomed, why = run_id_matches(labels.get(RUN_LABEL), run_id), f"run {run_id}"
            else:
                doomed, why = expired(labels.get(EXPIRY_LABEL), now), "expired"
            if doomed:
                self.remove(info["Id"])
                names = ",".join(n.lstrip("/") for n in info.get("Names") or [])
                removed.append(f"container {names or info['Id'][:12]} ({why})")
        return removed

    def close(self) -> None:
        """Release every sandbox still held, finish the removals, drop the engine client."""
        super().close()
        self.guard.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def _open_sockets(paths: Iterable[str]) -> None:
    """Let the sandbox's non-root user connect to the host sockets it is given (the door
    is meant for it; a socket made under a 022 umask would refuse uid 1000)."""
    for path in paths:
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode
            if mode & 0o666 != 0o666:
                os.chmod(path, (mode & 0o7777) | 0o666)


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.") or "x"
