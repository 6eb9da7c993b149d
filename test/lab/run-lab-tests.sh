#!/usr/bin/env bash
# Runs the end-to-end lab tests (real dockerd, real netfilter, real connections in network
# namespaces). They need root and the packages scripts/setup.sh installs; when something is
# missing they fail with a message, never skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "lab tests: need root (network namespaces, dockerd, iptables); run: sudo npm test" >&2
  exit 1
fi
files=(dist/test/lab/*.test.js)
if [[ ! -e ${files[0]} ]]; then
  echo "lab tests: nothing built under dist/test/lab (run npm run build)" >&2
  exit 1
fi
exec node --test --test-concurrency=1 "${files[@]}"
