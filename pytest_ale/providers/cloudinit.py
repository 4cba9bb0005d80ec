"""A cloud-init NoCloud seed (an ISO 9660 image labelled ``cidata``) for a fresh VM.

The seed creates the SSH user with passwordless sudo and the run's ephemeral public key,
and nothing else. Built in memory with ``pycdlib`` (pure Python: no genisoimage needed).
"""

from __future__ import annotations

import io
import json

import yaml


def user_data(user: str, public_key: str) -> str:
    config = {
        "users": [
            {
                "name": user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "lock_passwd": True,
                "ssh_authorized_keys": [public_key],
            }
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "package_update": False,
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, width=1 << 20)


def meta_data(instance_id: str, hostname: str) -> str:
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}) + "\n"


def seed_iso(instance_id: str, hostname: str, user: str, public_key: str) -> bytes:
    """The bytes of a NoCloud seed ISO (volume label ``cidata``)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, text in (
        ("user-data", user_data(user, public_key)),
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
