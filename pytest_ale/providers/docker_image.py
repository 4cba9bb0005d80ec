"""Build the docker provider's sandbox image locally: no registry, one command, cached.

    python -m pytest_ale.providers.docker_image build     # or: pytest-ale-image build

Two layers, each tagged by a hash of what it is made from, so a second ``build`` with
nothing changed returns at once:

1. ``pytest-ale/base:<hash>``: a Debian root filesystem made by ``debootstrap``
   (``images/debootstrap.sh``, needs root and ``apt-get install debootstrap``) and
   imported into Docker.
2. ``pytest-ale/sandbox:<hash>`` (also tagged ``:latest``, the docker preset's default):
   ``images/Dockerfile`` on top: Python 3 (``python`` on PATH), Node.js + npm, git, bash,
   tar, procps, curl and a non-root user ``agent`` (uid 1000).

Other commands: ``tag`` prints the tag the current sources would build; ``status`` says
whether it exists. ``--force`` rebuilds; ``--suite`` / ``--mirror`` pick the Debian release
and mirror. Users with a registry can skip all this and name any image in the preset
(``image:``) or with ``--ale-provider-opt image=NAME``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InfrastructureError
from .docker_client import connect

BASE_REPO = "pytest-ale/base"
IMAGE_REPO = "pytest-ale/sandbox"
DEFAULT_IMAGE = f"{IMAGE_REPO}:latest"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HASH_LABEL = "pytest-ale.image-hash"


def images_dir() -> Path:
    """The folder with ``debootstrap.sh`` and ``Dockerfile`` (``$ALE_IMAGES_DIR`` or the repo's)."""
    override = os.environ.get("ALE_IMAGES_DIR")
    folder = Path(override) if override else Path(__file__).resolve().parents[2] / "images"
    if not (folder / "Dockerfile").is_file() or not (folder / "debootstrap.sh").is_file():
        raise InfrastructureError(
            f"no images/Dockerfile and images/debootstrap.sh in {folder}; run from a pytest-ale "
            "checkout or set ALE_IMAGES_DIR to the folder holding them"
        )
    return folder


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:12]


def base_tag(folder: Path, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR) -> str:
    return f"{BASE_REPO}:{_digest((folder / 'debootstrap.sh').read_bytes(), suite, mirror)}"


def image_tag(folder: Path, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR) -> str:
    digest = _digest(base_tag(folder, suite, mirror), (folder / "Dockerfile").read_bytes())
    return f"{IMAGE_REPO}:{digest}"


def _exists(client: Any, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


def build(
    *,
    force: bool = False,
    suite: str = DEFAULT_SUITE,
    mirror: str = DEFAULT_MIRROR,
    folder: Path | None = None,
    log: Callable[[str], None] = print,
    client: Any = None,
) -> str:
    """Build (or reuse) the sandbox image; return its content-hash tag."""
    folder = folder or images_dir()
    client = client or connect()
    base, tag = base_tag(folder, suite, mirror), image_tag(folder, suite, mirror)
    if not force and _exists(client, tag):
        client.images.get(tag).tag(IMAGE_REPO, "latest")
        log(f"{tag} is up to date (also tagged {DEFAULT_IMAGE})")
        return tag
    if force or not _exists(client, base):
        _import_base(client, folder, base, suite, mirror, log)
    log(f"building {tag} from {folder / 'Dockerfile'} on {base}")
    stream = client.api.build(
        path=str(folder),
        dockerfile="Dockerfile",
        tag=tag,
        buildargs={"BASE": base},
        labels={HASH_LABEL: tag.rpartition(":")[2]},
        network_mode="host",
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise InfrastructureError(f"building {tag} failed: {chunk['error'].strip()}")
        text = chunk.get("stream", "").rstrip()
        if text:
            log(text)
    client.images.get(tag).tag(IMAGE_REPO, "latest")
    log(f"built {tag} (also tagged {DEFAULT_IMAGE})")
    return tag


def _import_base(client: Any, folder: Path, ref: str, suite: str, mirror: str, log: Callable[[str], None]):
    repo, _, tag = ref.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="ale-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        log(f"debootstrap {suite} from {mirror} (a few minutes, once)")
        done = subprocess.run(
            ["bash", str(folder / "debootstrap.sh"), str(rootfs), suite, mirror], check=False
        )
        if done.returncode != 0 or not rootfs.is_file():
            raise InfrastructureError(
                f"{folder / 'debootstrap.sh'} failed (exit {done.returncode}); it needs root and "
                "`apt-get install debootstrap`, and the Debian mirror reachable"
            )
        log(f"importing the root filesystem as {ref}")
        client.api.import_image_from_file(str(rootfs), repository=repo, tag=tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-ale-image", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "tag", "status"])
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    parser.add_argument("--suite", default=DEFAULT_SUITE, help="Debian release (default: bookworm)")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror URL")
    args = parser.parse_args(argv)
    try:
        folder = images_dir()
        tag = image_tag(folder, args.suite, args.mirror)
        if args.command == "tag":
            print(tag)
            return 0
        if args.command == "status":
            present = _exists(connect(), tag)
            print(f"{tag}: {'present' if present else 'missing (run: pytest-ale-image build)'}")
            return 0 if present else 1
        build(force=args.force, suite=args.suite, mirror=args.mirror, folder=folder)
    except InfrastructureError as exc:
        print(f"pytest-ale-image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
