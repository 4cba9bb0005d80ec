"""A cloud-init NoCloud seed (an ISO 9660 image labelled ``cidata``) for a fresh VM.

The seed creates the SSH user with passwordless sudo and the run's ephemeral public key,
and the agent's account: unprivileged, no sudo, no SSH key, no password (the SSH user
switches to it). Built in memory with ``pycdlib`` (pure Python: no genisoimage needed).
``agent_user_entry`` and ``agent_user_script`` give the same account to clouds that take
their own user data (EC2's cloud-init, a GCE startup script).
"""

from __future__ import annotations

import io
import json
import shlex

import yaml


def agent_user_entry(agent_user: str) -> dict[str, object]:
    """A cloud-init ``users`` entry for the agent: no sudo, no key, no password."""
    return {"name": agent_user, "shell": "/bin/bash", "lock_passwd": True, "sudo": False}


def agent_user_script(agent_user: str) -> str:
    """A root shell script that creates the agent's account if it is missing."""
    name = shlex.quote(agent_user)
    return f"#!/bin/sh\nid -u {name} >/dev/null 2>&1 || useradd -m -U -s /bin/bash {name}\n"


def cloud_config(entries: list[object]) -> str:
    """``#cloud-config`` user data creating ``entries`` (``"default"`` keeps the image's)."""
    return "#cloud-config\n" + yaml.safe_dump({"users": entries}, sort_keys=False, width=1 << 20)


def user_data(user: str, public_key: str, agent_user: str | None = None) -> str:
    config = {
        "users": [
            {
                "name": user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "lock_passwd": True,
                "ssh_authorized_keys": [public_key],
            },
            *([agent_user_entry(agent_user)] if agent_user else []),
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "package_update": False,
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, width=1 << 20)


def meta_data(instance_id: str, hostname: str) -> str:
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}) + "\n"


def seed_iso(
    instance_id: str, hostname: str, user: str, public_key: str, agent_user: str | None = None
) -> bytes:
    """The bytes of a NoCloud seed ISO (volume label ``cidata``)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, text in (
        ("user-data", user_data(user, public_key, agent_user)),
        ("meta-data", meta_data(instance_id, hostname)),
    ):
        data = text.encode()
        short = name.upper().replace("-", "_")
        iso.add_fp(io.BytesIO(data), len(data), f"/{short}.;1", rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_seed(data: bytes) -> dict[str, str]:
    """The files of a seed ISO by name (used by tests and for debugging)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    files = {}
    for name in ("user-data", "meta-data"):
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
        files[name] = out.getvalue().decode()
    iso.close()
    return files
