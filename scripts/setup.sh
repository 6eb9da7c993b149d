#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine (run as root):
# the kernel's firewall tools, Docker Engine 20.10 (docker.io) and 28 (scripts/docker28.sh), socat and busybox for the lab image,
# wrk and iperf3 for the data-plane benchmark, systemd for systemd-analyze (the unit test scores the
# service unit with it), zsh and fish (the completion tests run them), man-db and groff-base (the man
# page tests render the pages), ansible-core and openssh-server (the Ansible role's lab test runs
# its own sshd inside a lab namespace), then the npm packages from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(iptables ipset conntrack nftables docker.io socat busybox-static curl iproute2 util-linux coreutils wrk iperf3 systemd zsh fish man-db groff-base ansible-core openssh-server)
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
  # docker.io's post-install would start the system dockerd, which rewrites this machine's own
  # firewall. policy-rc.d forbids service starts for the install; the lab runs its own dockerd
  # inside a network namespace.
  created_policy_rc=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy_rc=1
  fi
  trap 'if [[ $created_policy_rc -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Nor at boot: this machine's own SSH service stays as it was (off); the lab starts its own sshd.
  if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
    systemctl disable ssh.service >/dev/null 2>&1 || true
  fi
fi

# Docker 28 beside 20.10, for the lab's Docker 28 mode (unpacked into /opt/docker28, nothing replaced).
bash scripts/docker28.sh

# A node_modules that is a symbolic link is another checkout's (a git worktree sharing it): npm ci
# would empty the folder it points to under that checkout's feet, so it is left alone.
if [[ -L node_modules ]]; then
  :
elif [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund
fi
