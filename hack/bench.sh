#!/usr/bin/env bash
# `make bench`: every benchmark (the agent's in network namespaces, the controller's on the
# local clusters), printed as one table of medians and ratios against
# baselines measured in the same run, with this machine's description. Uses the local
# clusters when they are up (make clusters); otherwise brings them up and takes them down.
# Fails when a row misses its target, after printing the whole table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
artifacts=${ARTIFACTS:-$root/_artifacts}
mkdir -p "$artifacts"
out="$artifacts/bench.jsonl"
rm -f "$out"
rig=$root/bin/rig

own=
if [ ! -e /var/lib/mirrord-rig ]; then
  make --no-print-directory clusters
  own=1
else
  "$rig" load bin/images/kubectl-mirrord.tar
  # The image keeps its tag: controllers already installed restart onto the new build.
  for kc in /var/lib/mirrord-rig/kubeconfig/c*.yaml; do
    if /var/lib/mirrord-rig/bin/kubectl --kubeconfig "$kc" -n mirrord-system get deploy/mirrord-controller >/dev/null 2>&1; then
      /var/lib/mirrord-rig/bin/kubectl --kubeconfig "$kc" -n mirrord-system rollout restart deploy/mirrord-controller
      /var/lib/mirrord-rig/bin/kubectl --kubeconfig "$kc" -n mirrord-system rollout status deploy/mirrord-controller --timeout=120s
    fi
  done
fi
cleanup() {
  local rc=$?
  if [ -n "$own" ]; then make --no-print-directory clusters-down || rc=1; fi
  exit $rc
}
trap cleanup EXIT

MIRRORD_BENCH_OUT="$out" \
MIRRORD_E2E_KUBECONFIGS=$(ls /var/lib/mirrord-rig/kubeconfig/c*.yaml | paste -sd,) \
MIRRORD_E2E_KUBECTL=/var/lib/mirrord-rig/bin/kubectl \
MIRRORD_E2E_RIG="$rig" \
MIRRORD_E2E_PLUGIN="$root/bin/kubectl-mirrord" \
MIRRORD_E2E_ARTIFACTS="$artifacts" \
  go test -tags bench -count=1 -timeout 80m -v -run '^TestBench' ./pkg/agent/... ./pkg/local/... ./test/bench/... 2>&1 | tee "$artifacts/bench.log" || true

go run ./test/bench/report/cmd/benchreport "$out" | tee "$artifacts/bench.txt"
