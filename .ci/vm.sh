#!/usr/bin/env bash
# CI set-up for the SSH / VM provider tests (issue 7): a real sshd binary (the tests start
# their own on loopback), libvirt headers to build libvirt-python, and the Python deps.
# Idempotent; fast when everything is already there. Run as root on Debian 12.
set -euo pipefail

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need+=(sudo)   # a non-root login user's root side
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
python3 -c 'import sysconfig,os,sys; sys.exit(0 if os.path.exists(sysconfig.get_paths()["include"]+"/Python.h") else 1)' \
  || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# sshd refuses to start without its privilege-separation folder
mkdir -p /run/sshd && chmod 755 /run/sshd

python3 - <<'PY' || pip install -q asyncssh boto3 'moto[server]' google-cloud-compute \
    google-cloud-storage gcp-storage-emulator libvirt-python pycdlib
import asyncssh, boto3, moto, libvirt, pycdlib  # noqa: F401
from google.cloud import compute_v1, storage  # noqa: F401
PY
