#!/usr/bin/env bash
# Puts Docker Engine 28 (dockerd, docker-proxy, containerd, docker-init) in /opt/docker28 beside
# Debian 12's Docker 20.10, without installing anything over it (LAB.md, "Docker 28, for real"):
# Debian's unstable suite carries docker.io 28.5.2, and its dockerd needs only libc >= 2.34.
# The packages are fetched with a temporary sources list (the machine's own apt sources are not
# touched) and verified by apt against Debian's archive key, then unpacked with dpkg-deb.
# Idempotent: a folder that already holds a Docker 28 dockerd is left as it is.
set -euo pipefail

DEST=${DOCKWALL_DOCKER28_DIR:-/opt/docker28}
# The lab is written against 28's rules (raw drops, DOCKER-FORWARD, ...): another major version
# from the unstable suite would be a different engine, so it is refused rather than tested as 28.
WANT_MAJOR=28

installed_version() {
  "$DEST/usr/sbin/dockerd" --version 2>/dev/null | sed -n 's/^Docker version \([0-9][0-9.]*\).*/\1/p'
}

if [[ $(installed_version) == "$WANT_MAJOR".* ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "docker28: installing Docker 28 into $DEST needs root (sudo $0)" >&2
  exit 1
fi

mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" > "$work/sources.list"
apt_opts=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
echo "docker28: fetching docker.io and containerd from $mirror sid"
apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
(cd "$work" && apt-get "${apt_opts[@]}" download docker.io containerd >"$work/download.log" 2>&1) || { cat "$work/download.log" >&2; exit 1; }

version=$(dpkg-deb -f "$work"/docker.io_*.deb Version)
if [[ $version != "$WANT_MAJOR".* ]]; then
  echo "docker28: Debian's unstable suite now carries docker.io $version, not $WANT_MAJOR.x; the lab's Docker 28 mode needs 28" >&2
  exit 1
fi
rm -rf "$DEST.new"
mkdir -p "$DEST.new"
dpkg-deb -x "$work"/docker.io_*.deb "$DEST.new"
dpkg-deb -x "$work"/containerd_*.deb "$DEST.new"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
echo "docker28: Docker $(installed_version) in $DEST"
