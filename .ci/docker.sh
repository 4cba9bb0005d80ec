#!/usr/bin/env bash
# Docker provider prerequisites on a fresh Debian 12 machine (run as root; idempotent):
# a Docker engine (Debian's docker.io), a running dockerd, debootstrap, the Docker SDK,
# the sandbox image and the harness image on it (each built once, reused when its content
# tag already exists).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "docker.sh: starting dockerd"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q 'docker>=7.0'
python3 -m pytest_ale.providers.docker.image build --harnesses
