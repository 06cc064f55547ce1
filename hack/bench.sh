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
fi
cleanup() {
  local rc=$?
  if [ -n "$own" ]; then make --no-print-directory clusters-down || rc=1; fi
  exit $rc
}
trap cleanup EXIT
# This build's image, pulled by the nodes from the rig's registry; the benchmarks install it
# by digest, so controllers already installed roll onto it.
image=$("$rig" push bin/images/kubectl-mirrord.tar "kubectl-mirrord:$(git describe --tags --always --dirty 2>/dev/null || echo dev)")

MIRRORD_E2E_IMAGE="$image" \
MIRRORD_BENCH_OUT="$out" \
MIRRORD_E2E_KUBECONFIGS=$(ls /var/lib/mirrord-rig/kubeconfig/c*.yaml | paste -sd,) \
MIRRORD_E2E_KUBECTL=/var/lib/mirrord-rig/bin/kubectl \
MIRRORD_E2E_RIG="$rig" \
MIRRORD_E2E_PLUGIN="$root/bin/kubectl-mirrord" \
MIRRORD_E2E_ARTIFACTS="$artifacts" \
  go test -tags bench -count=1 -timeout 80m -v -run '^TestBench' ./pkg/agent/... ./pkg/local/... ./test/bench/... 2>&1 | tee "$artifacts/bench.log" || true

go run ./test/bench/report/cmd/benchreport "$out" | tee "$artifacts/bench.txt"
