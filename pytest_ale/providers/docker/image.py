"""Build the docker provider's sandbox image locally: no registry, one command, cached.

    python -m pytest_ale.providers.docker.image build     # or: pytest-ale-image build

Two layers, each tagged by a hash of what it is made from, so a second ``build`` with
nothing changed returns at once:

1. ``pytest-ale/base:<hash>``: a Debian root filesystem made by ``debootstrap``
   (``pytest_ale/images/debootstrap.sh``, needs root and ``apt-get install debootstrap``) and
   imported into Docker.
2. ``pytest-ale/sandbox:<hash>`` (also tagged ``:latest``, the docker preset's default):
   ``pytest_ale/images/Dockerfile`` on top: Python 3 (``python`` on PATH), Node.js + npm, git, bash,
   tar, procps, curl and a non-root user ``agent`` (uid 1000).
3. With ``--harnesses``, ``pytest-ale/harness:<hash>`` (and ``:latest``, the
   ``docker-harness`` preset's image): ``pytest_ale/images/harness.Dockerfile``, Node.js 22 and the
   Claude Code, Codex and Gemini CLIs at the versions the built-in agent presets pin.

Other commands: ``tag`` prints the tag the current sources would build; ``status`` says
whether it exists. ``--force`` rebuilds; ``--suite`` picks the Debian release. The Debian
mirror is the host's own (``mirror.py``: read from ``/etc/apt/sources.list`` and
``/etc/apt/sources.list.d/``); ``--mirror`` / ``--security-mirror`` name others. Users with
a registry can skip all this and name any image in the preset (``image:``) or with
``--ale-provider-opt image=NAME``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import AleError, InfrastructureError
from .client import connect
from .mirror import Mirror, host_mirror

BASE_REPO = "pytest-ale/base"
IMAGE_REPO = "pytest-ale/sandbox"
DEFAULT_IMAGE = f"{IMAGE_REPO}:latest"
DEFAULT_SUITE = "bookworm"
HASH_LABEL = "pytest-ale.image-hash"
HARNESS_REPO = "pytest-ale/harness"
HARNESS_IMAGE = f"{HARNESS_REPO}:latest"
HARNESS_DOCKERFILE = "harness.Dockerfile"
#: built-in agent preset -> the build argument carrying its pinned version
HARNESS_ARGS = {
    "claude-code": "CLAUDE_CODE_VERSION",
    "codex": "CODEX_VERSION",
    "gemini-cli": "GEMINI_CLI_VERSION",
}


def images_dir() -> Path:
    """The folder with ``debootstrap.sh`` and the Dockerfiles: ``$ALE_IMAGES_DIR``, else the
    copy shipped inside the package (``pytest_ale/images/``)."""
    override = os.environ.get("ALE_IMAGES_DIR")
    folder = Path(override) if override else Path(__file__).resolve().parents[2] / "images"
    if not (folder / "Dockerfile").is_file() or not (folder / "debootstrap.sh").is_file():
        raise InfrastructureError(
            f"no Dockerfile and debootstrap.sh in {folder}; set ALE_IMAGES_DIR to a folder "
            "holding them (pytest_ale/images/ in the package is the default)"
        )
    return folder


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:12]


def base_tag(folder: Path, suite: str = DEFAULT_SUITE, mirror: Mirror | None = None) -> str:
    """The base layer's tag: a hash of the script, the suite and the mirror (the host's,
    ``mirror.host_mirror``, unless one is given)."""
    mirror = mirror or host_mirror(suite)
    script = (folder / "debootstrap.sh").read_bytes()
    return f"{BASE_REPO}:{_digest(script, suite, mirror.archive, mirror.security or '')}"


def image_tag(folder: Path, suite: str = DEFAULT_SUITE, mirror: Mirror | None = None) -> str:
    digest = _digest(base_tag(folder, suite, mirror), (folder / "Dockerfile").read_bytes())
    return f"{IMAGE_REPO}:{digest}"


def _exists(client: Any, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


def harness_versions() -> dict[str, str]:
    """The CLI versions the built-in agent presets pin: what the harness image installs."""
    import yaml

    presets = Path(__file__).resolve().parents[2] / "presets" / "agents"
    versions = {}
    for preset, arg in HARNESS_ARGS.items():
        data = yaml.safe_load((presets / f"{preset}.yaml").read_text(encoding="utf-8"))
        versions[arg] = str(data["version"])
    return versions


def harness_tag(folder: Path, suite: str = DEFAULT_SUITE, mirror: Mirror | None = None) -> str:
    versions = json.dumps(harness_versions(), sort_keys=True)
    digest = _digest(image_tag(folder, suite, mirror), (folder / HARNESS_DOCKERFILE).read_bytes(), versions)
    return f"{HARNESS_REPO}:{digest}"


def build(
    *,
    force: bool = False,
    suite: str = DEFAULT_SUITE,
    mirror: Mirror | None = None,
    folder: Path | None = None,
    log: Callable[[str], None] = print,
    client: Any = None,
    harnesses: bool = False,
) -> str:
    """Build (or reuse) the sandbox image, and the harness image on it when ``harnesses``;
    return the content-hash tag of the last one built."""
    folder = folder or images_dir()
    mirror = mirror or host_mirror(suite)
    client = client or connect()
    base, tag = base_tag(folder, suite, mirror), image_tag(folder, suite, mirror)
    if force or not _exists(client, tag):
        if force or not _exists(client, base):
            _import_base(client, folder, base, suite, mirror, log)
        _build_layer(client, folder, "Dockerfile", tag, {"BASE": base}, log)
    else:
        log(f"{tag} is up to date")
    _latest(client, tag, IMAGE_REPO, log)
    if not harnesses:
        return tag
    top = harness_tag(folder, suite, mirror)
    if force or not _exists(client, top):
        _build_layer(client, folder, HARNESS_DOCKERFILE, top, {"BASE": tag, **harness_versions()}, log)
    else:
        log(f"{top} is up to date")
    _latest(client, top, HARNESS_REPO, log)
    return top


def _latest(client: Any, tag: str, repo: str, log: Callable[[str], None]) -> None:
    client.images.get(tag).tag(repo, "latest")
    log(f"tagged {tag} as {repo}:latest")


def _build_layer(
    client: Any,
    folder: Path,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    log: Callable[[str], None],
) -> None:
    """``docker build`` of one Dockerfile of ``folder``, with the host's CA bundle beside it
    (``build-ca.crt``) for registries behind a TLS-inspecting proxy."""
    log(f"building {tag} from {folder / dockerfile}")
    with tempfile.TemporaryDirectory(prefix="ale-build-") as tmp:
        context = Path(tmp)
        shutil.copy(folder / dockerfile, context / dockerfile)
        ca = _ca_bundle()
        (context / "build-ca.crt").write_bytes(ca.read_bytes() if ca else b"")
        stream = client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
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
    log(f"built {tag}")


def _ca_bundle() -> Path | None:
    """The CA bundle this machine's own clients trust (``PIP_CERT``, ``NODE_EXTRA_CA_CERTS``,
    ``SSL_CERT_FILE``, else Debian's system bundle), if there is one."""
    for name in ("ALE_BUILD_CA", "NODE_EXTRA_CA_CERTS", "PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    return system if system.is_file() else None


def _import_base(client: Any, folder: Path, ref: str, suite: str, mirror: Mirror, log: Callable[[str], None]):
    repo, _, tag = ref.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="ale-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        log(f"debootstrap {suite} from {mirror.archive} (a few minutes, once)")
        script = [str(folder / "debootstrap.sh"), str(rootfs), suite, mirror.archive, mirror.security or ""]
        done = subprocess.run(["bash", *script], check=False)
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
    parser.add_argument(
        "--harnesses",
        action="store_true",
        help=f"also build {HARNESS_IMAGE}: Node.js 22 and the pinned agent CLIs on top",
    )
    parser.add_argument("--suite", default=DEFAULT_SUITE, help="Debian release (default: bookworm)")
    parser.add_argument("--mirror", help="Debian mirror URL (default: the host's, from its apt sources)")
    parser.add_argument(
        "--security-mirror", help="Debian security mirror URL (default: the host's, if it has one)"
    )
    args = parser.parse_args(argv)
    try:
        folder = images_dir()
        if args.mirror:
            mirror = Mirror(args.mirror, args.security_mirror)
        else:
            host = host_mirror(args.suite)
            mirror = Mirror(host.archive, args.security_mirror or host.security)
        tag = (harness_tag if args.harnesses else image_tag)(folder, args.suite, mirror)
        if args.command == "tag":
            print(tag)
            return 0
        if args.command == "status":
            present = _exists(connect(), tag)
            print(f"{tag}: {'present' if present else 'missing (run: pytest-ale-image build)'}")
            return 0 if present else 1
        build(force=args.force, suite=args.suite, mirror=mirror, folder=folder, harnesses=args.harnesses)
    except AleError as exc:
        print(f"pytest-ale-image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
