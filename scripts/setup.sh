#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine (run as root):
# the kernel's firewall tools, Docker Engine 20.10 (docker.io), socat and busybox for the lab image,
# then the npm packages from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(iptables ipset conntrack docker.io socat busybox-static curl iproute2 util-linux)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: installing ${missing[*]} needs root (sudo $0)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # docker.io's post-install tries to start the system dockerd; on machines without systemd that
  # fails harmlessly. The lab starts its own dockerd inside a network namespace.
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund
fi
