"""The Debian mirror the image builder uses: the one this machine's own apt already uses.

No mirror host is written into pytest-ale: ``image.py`` and ``images/debootstrap.sh`` take
it from the host's apt sources, in either form apt reads:

- one-line ``sources.list`` entries (``/etc/apt/sources.list``, ``sources.list.d/*.list``):
  ``deb [options] URI SUITE COMPONENT...``;
- deb822 stanzas (``sources.list.d/*.sources``): ``Types:``, ``URIs:``, ``Suites:``,
  ``Components:`` (and ``Enabled: no`` to switch one off).

The archive mirror is the first ``deb`` entry with the ``main`` component serving the suite
asked for (else the host's own release, from ``/etc/os-release``); the security mirror, if
the host has one, is the entry serving ``<suite>-security``. No such entry is a
``ConfigError`` naming the files read and ``--mirror``, the way to name one by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError

APT_DIR = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry: where it came from, its URI, suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: Path


@dataclass(frozen=True)
class Mirror:
    """The Debian archive to debootstrap from, and the security archive if the host has one."""

    archive: str
    security: str | None = None


def source_files(apt_dir: Path = APT_DIR) -> list[Path]:
    """The files apt reads its sources from, in apt's order (``sources.list`` first)."""
    files = [apt_dir / "sources.list"]
    folder = apt_dir / "sources.list.d"
    if folder.is_dir():
        files += sorted(p for p in folder.iterdir() if p.suffix in (".list", ".sources"))
    return [p for p in files if p.is_file()]


def _one_line(path: Path, text: str) -> list[AptSource]:
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # [arch=amd64 signed-by=...]
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            found.append(AptSource(words[1].rstrip("/"), (words[2],), tuple(words[3:]), path))
    return found


def _deb822(path: Path, text: str) -> list[AptSource]:
    found = []
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    for stanza in re.split(r"\n\s*\n", "\n".join(lines)):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:  # a folded continuation line
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        suites, components = (
            tuple(fields.get("suites", "").split()),
            tuple(fields.get("components", "").split()),
        )
        found += [
            AptSource(uri.rstrip("/"), suites, components, path) for uri in fields.get("uris", "").split()
        ]
    return found


def read_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every enabled ``deb`` entry of the host's apt sources, in apt's order."""
    found: list[AptSource] = []
    for path in source_files(apt_dir):
        text = path.read_text(encoding="utf-8", errors="replace")
        found += _deb822(path, text) if path.suffix == ".sources" else _one_line(path, text)
    return found


def host_release(os_release: Path = OS_RELEASE) -> str | None:
    """The host's Debian codename (``VERSION_CODENAME``), if it says one."""
    if not os_release.is_file():
        return None
    for line in os_release.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def _serving(sources: list[AptSource], suite: str) -> str | None:
    return next((s.uri for s in sources if suite in s.suites and "main" in s.components), None)


def host_mirror(suite: str, apt_dir: Path = APT_DIR, os_release: Path = OS_RELEASE) -> Mirror:
    """The mirror serving ``suite`` (or the host's own release) in the host's apt sources."""
    sources = read_sources(apt_dir)
    release = host_release(os_release)
    archive = _serving(sources, suite) or (_serving(sources, release) if release else None)
    if archive is None:
        read = ", ".join(str(p) for p in source_files(apt_dir)) or "none of them exists"
        raise ConfigError(
            f"no Debian mirror in the host's apt sources: no enabled `deb` entry with the `main` "
            f"component serves {suite!r}"
            + (f" or the host's release {release!r}" if release and release != suite else "")
            + f" in {apt_dir / 'sources.list'} or {apt_dir / 'sources.list.d'}/*.list|*.sources "
            f"(read: {read}); add one, or name the mirror with --mirror URL"
        )
    security = _serving(sources, f"{suite}-security")
    if security is None and release:
        security = _serving(sources, f"{release}-security")
    return Mirror(archive, security)
