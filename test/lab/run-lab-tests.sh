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
# Every process this run starts inherits this tag, so what outlives the run can be told from
# anything else on the machine (another run, another lab).
export DOCKWALL_LAB_RUN="$$-$RANDOM$RANDOM"
status=0
node --test --test-concurrency=1 "${files[@]}" || status=$?
# A process of this run still alive now outlived its suite (a crash, a teardown that missed it; each
# lab also sweeps its own, lab.ts): that fails the run, and they are ended here, by pid, so nothing
# is left on the machine.
# The tag is taken out of this script's environment first: the sweep's own commands (grep, cut)
# would otherwise carry it and find themselves.
run=$DOCKWALL_LAB_RUN
unset DOCKWALL_LAB_RUN
left=""
for pid in $(grep -lsa "DOCKWALL_LAB_RUN=$run" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
  [[ $pid != "$$" && -e /proc/$pid ]] && left+="$pid "
done
if [[ -n $left ]]; then
  echo "lab tests: processes left running after the suites:" >&2
  for pid in $left; do echo "  $pid $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)" >&2; done
  kill -9 $left 2>/dev/null || true
  status=1
fi
exit "$status"
