#!/usr/bin/env bash
# Runs the demo (after scripts/setup.sh and npm run build). Needs root: it builds network namespaces
# and runs its own dockerd inside one; the machine's own firewall is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then echo "demo: needs root (sudo npm run demo)" >&2; exit 1; fi
exec node dist/demo/demo.js
