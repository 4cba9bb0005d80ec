"""The README's quick start, pasted verbatim on a fresh Debian 12 that has only python3, pip,
venv and git: in a container of the debootstrap base image (the docker provider's own
``pytest-ale/base``), with Debian's Python 3.11.2 and no bubblewrap, as a new user has it.
Packages come from Debian's mirror and PyPI (the host's CA bundle is handed in)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
set -e
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-pip python3-venv git ca-certificates >/dev/null
git clone -q /repo /home/user/pytest-ale
cd /home/user/pytest-ale
python3 --version
bash -e /quickstart.sh
echo "== noop"
. .venv/bin/activate
pytest tasks/ --ale-agent=noop -q -p no:cacheprovider || echo "noop exit $?"
"""


def quick_start_block() -> str:
    section = (REPO / "README.md").read_text().split("## Quick start", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "README.md: no ```sh block under '## Quick start'"
    return found.group(1)


def test_readme_quick_start_on_a_fresh_debian_12(tmp_path: Path) -> None:
    from pytest_ale.providers.docker.image import _ca_bundle, base_tag, images_dir
    from tests.test_docker_provider import docker_client_or_skip

    client = docker_client_or_skip()
    if subprocess.run(["git", "-C", str(REPO), "rev-parse"], capture_output=True).returncode:
        pytest.skip("the quick start clones the repository: this checkout is not a git repository")
    base = base_tag(images_dir())
    (tmp_path / "quickstart.sh").write_text(quick_start_block())
    volumes = {
        str(REPO): {"bind": "/repo", "mode": "ro"},
        str(tmp_path / "quickstart.sh"): {"bind": "/quickstart.sh", "mode": "ro"},
    }
    environment = {}
    ca = _ca_bundle()
    if ca:
        volumes[str(ca)] = {"bind": "/etc/ssl/certs/build-ca.crt", "mode": "ro"}
        environment["PIP_CERT"] = "/etc/ssl/certs/build-ca.crt"
    container = client.containers.run(
        base,
        ["bash", "-c", SCRIPT],
        volumes=volumes,
        environment=environment,
        network_mode="host",
        detach=True,
        labels={"pytest-ale.test": "quickstart"},
    )
    try:
        status = container.wait(timeout=900)
        log = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, log[-5000:]
    assert "Python 3.11" in log
    ran, noop = log.split("== noop", 1)
    assert "bubblewrap is not installed" in ran  # the one clear warning, and the run goes on
    tasks = len(list((REPO / "tasks").glob("*/*/task_card.json")))
    assert re.search(rf"oracle\s+ALL\s+{tasks}\s+1\.000", ran) and f"{tasks} passed" in ran, ran[-4000:]
    assert f"{tasks} failed" in noop and re.search(rf"noop\s+ALL\s+{tasks}\s+0\.000", noop), noop[-4000:]
