"""The image builder's Debian mirror comes from the host's apt sources (one-line and deb822
files), with an error naming the files read when none serves the suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_ale.errors import ConfigError
from pytest_ale.providers.docker import image
from pytest_ale.providers.docker.mirror import Mirror, host_mirror, read_sources

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_ale"

DEB822 = """\
Types: deb
# a comment inside the stanza
URIs: http://mirror.example.test/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://security.example.test/debian-security/
Suites: bookworm-security
Components: main
"""

NODE = """\
Types: deb
URIs: http://node.example.test/node_20.x
Suites: nodistro
Components: main
"""


def apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_deb822_sources_give_the_archive_and_the_security_mirror(tmp_path: Path) -> None:
    root = apt_dir(
        tmp_path, {"sources.list.d/aaa-node.sources": NODE, "sources.list.d/debian.sources": DEB822}
    )
    found = host_mirror("bookworm", apt_dir=root, os_release=tmp_path / "none")
    assert found == Mirror(
        "http://mirror.example.test/debian", "http://security.example.test/debian-security"
    )


def test_one_line_sources_with_options_and_comments(tmp_path: Path) -> None:
    listing = """\
# deb http://old.example.test/debian bookworm main
deb-src http://src.example.test/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example.test/debian/ bookworm main
deb http://one.example.test/security bookworm-security main  # trailing comment
"""
    root = apt_dir(tmp_path, {"sources.list": listing})
    found = host_mirror("bookworm", apt_dir=root, os_release=tmp_path / "none")
    assert found == Mirror("http://one.example.test/debian", "http://one.example.test/security")
    assert [s.origin.name for s in read_sources(root)] == ["sources.list", "sources.list"]


def test_a_disabled_stanza_is_skipped_and_the_host_release_serves_another_suite(tmp_path: Path) -> None:
    off = DEB822.replace("Types: deb\n#", "Types: deb\nEnabled: no\n#", 1)
    root = apt_dir(
        tmp_path,
        {
            "sources.list.d/off.sources": off,
            "sources.list.d/b.list": "deb http://b.example.test/d bookworm main\n",
        },
    )
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian"\nVERSION_CODENAME=bookworm\n')
    # trixie is in no entry: the mirror serving the host's own release serves it too
    found = host_mirror("trixie", apt_dir=root, os_release=os_release)
    assert found == Mirror("http://b.example.test/d", "http://security.example.test/debian-security")


def test_no_debian_entry_is_an_error_naming_the_files(tmp_path: Path) -> None:
    root = apt_dir(tmp_path, {"sources.list.d/node.sources": NODE})
    with pytest.raises(ConfigError, match="no Debian mirror") as caught:
        host_mirror("bookworm", apt_dir=root, os_release=tmp_path / "none")
    assert str(root / "sources.list.d" / "node.sources") in str(caught.value)
    assert "--mirror" in str(caught.value)


def test_the_tag_follows_the_mirror(tmp_path: Path) -> None:
    folder = image.images_dir()
    one, two = Mirror("http://a.example.test/debian"), Mirror("http://b.example.test/debian")
    assert image.base_tag(folder, "bookworm", one) != image.base_tag(folder, "bookworm", two)
    assert image.base_tag(folder, "bookworm", one) == image.base_tag(folder, "bookworm", one)


def test_no_mirror_host_is_written_into_the_builder() -> None:
    for path in (PACKAGE / "images" / "debootstrap.sh", PACKAGE / "providers" / "docker" / "image.py"):
        assert not re.search(r"https?://[a-z]", path.read_text()), path
