#!/usr/bin/env bash
# Make the sandbox base image's root filesystem with debootstrap, as one tar file.
#
#   images/debootstrap.sh OUT.tar SUITE MIRROR [SECURITY_MIRROR]
#
# No registry needed: packages come from the Debian mirror, which the builder reads from
# the host's own apt sources (pytest_ale/providers/docker/mirror.py). The builder
# (`python -m pytest_ale.providers.docker.image build`) imports the tar into Docker and
# builds images/Dockerfile on top. Needs root and `debootstrap` (apt-get install debootstrap).
set -euo pipefail
usage="usage: debootstrap.sh OUT.tar SUITE MIRROR [SECURITY_MIRROR]"
out=${1:?$usage}
suite=${2:?$usage}
mirror=${3:?$usage}
security=${4:-}

[ "$(id -u)" = 0 ] || { echo "debootstrap.sh: run as root (debootstrap needs it)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debootstrap.sh: apt-get install debootstrap" >&2; exit 1; }

root=$(mktemp -d /var/tmp/ale-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >&2

{
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [ -z "$security" ] || echo "deb $security $suite-security main"
} >"$root/etc/apt/sources.list"
# keep images small: no apt caches, no docs, no man pages
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
cat >"$root/etc/dpkg/dpkg.cfg.d/01-ale-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
CFG
tar --numeric-owner -C "$root" -cf "$out" .
echo "debootstrap.sh: wrote $out" >&2
