"""Connecting to the Docker engine, and the typed errors that say how to fix a fault.

Every fault of the engine is an ``InfrastructureError`` (retried, reported as an error,
never as a score): the daemon not answering (with how to start it), the sandbox image
missing (with the command that builds it), a container that died while in use.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import InfrastructureError, SandboxGoneError

#: the one command that builds the sandbox image locally (no registry needed)
BUILD_COMMAND = "python -m pytest_ale.providers.docker.image build"

#: the label every container of this provider carries (what ``--ale-sweep`` looks for)
PROVIDER_LABEL = "pytest-ale.provider"
RUN_LABEL = "pytest-ale.run-id"
TEST_LABEL = "pytest-ale.test-id"
EXPIRY_LABEL = "pytest-ale.expires"


class DockerUnavailableError(InfrastructureError):
    """The Docker daemon does not answer (not installed, not started, no permission)."""


class DockerImageMissingError(InfrastructureError):
    """The sandbox image is not in the engine's image store."""


class ContainerDiedError(SandboxGoneError):
    """A trial's container stopped while the trial still needed it."""


def connect(base_url: str | None = None, timeout: float = 120) -> Any:
    """A ``docker.DockerClient`` that answered a ping; ``DockerUnavailableError`` if none."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - the entry point already checks this
        raise InfrastructureError(
            "the docker provider needs the Docker SDK: pip install 'pytest-ale[docker]'"
        ) from exc
    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = (
            docker.DockerClient(base_url=base_url, timeout=int(timeout))
            if base_url
            else docker.from_env(timeout=int(timeout))
        )
        client.ping()
    except DockerException as exc:
        raise DockerUnavailableError(
            f"the Docker daemon at {where} does not answer ({exc}). Start it: "
            "`sudo systemctl start docker`, or `sudo dockerd >/var/log/dockerd.log 2>&1 &` "
            "(Debian: `apt-get install docker.io`; `bash .ci/docker.sh` does all of this), "
            "or point DOCKER_HOST (or the preset's base_url) at a running engine"
        ) from exc
    return client


def image_missing(image: str) -> DockerImageMissingError:
    return DockerImageMissingError(
        f"the sandbox image {image!r} is not in the Docker engine; build it with "
        f"`{BUILD_COMMAND}` (no registry needed), or set `image:` in providers/docker.yaml "
        "(or --ale-provider-opt image=NAME) to an image you have"
    )
