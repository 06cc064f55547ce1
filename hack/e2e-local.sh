#!/usr/bin/env bash
# Brings local clusters up twice (timing the cold-or-warm first run and the warm second
# run), runs the e2e suite, and checks after each teardown that nothing is left behind.
# Called by hack/test.sh under `rig subreaper`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
artifacts=${ARTIFACTS:-$root/_artifacts}
mkdir -p "$artifacts"
rig=$root/bin/rig
# hack/test.sh snapshots the host before the unit tests; alone, this script does it here.
baseline=${MIRRORD_HOST_BASELINE:-$artifacts/host-before.json}
[ -n "${MIRRORD_HOST_BASELINE:-}" ] || $rig snapshot "$baseline"

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -d /var/lib/mirrord-rig ]; then
    $rig logs "$artifacts/rig-logs" || true
    echo "e2e: component logs saved in $artifacts/rig-logs" >&2
  fi
  make --no-print-directory clusters-down || rc=1
  $rig check "$baseline" || rc=1
  exit $rc
}
trap cleanup EXIT

# timed_up NAME: make clusters, with its output on stderr and in a log; prints milliseconds.
timed_up() {
  local start
  start=$(date +%s%N)
  make --no-print-directory clusters 2>&1 | tee "$artifacts/clusters-$1.log" >&2
  echo $((($(date +%s%N) - start) / 1000000))
}
seconds() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

first=$(timed_up first)
kind=warm
grep -q "^rig: building " "$artifacts/clusters-first.log" && kind=cold
make --no-print-directory clusters-down
$rig check "$baseline"
second=$(timed_up second)

printf '\n== make clusters timings (3 clusters): first run %ss (%s build cache), second run %ss (warm); targets: warm <= 60s, cold <= 600s\n\n' \
  "$(seconds "$first")" "$kind" "$(seconds "$second")" | tee "$artifacts/timings.txt"

# The project's image reaches the nodes as it does a real cluster's: pulled from a registry.
image=$("$rig" push bin/images/kubectl-mirrord.tar "kubectl-mirrord:$(git describe --tags --always --dirty 2>/dev/null || echo dev)")
MIRRORD_E2E_IMAGE="$image" \
MIRRORD_E2E_KUBECONFIGS=$(ls /var/lib/mirrord-rig/kubeconfig/c*.yaml | paste -sd,) \
MIRRORD_E2E_KUBECTL=/var/lib/mirrord-rig/bin/kubectl \
MIRRORD_E2E_COLLECT_LOGS="$rig logs" \
MIRRORD_E2E_RIG="$rig" \
MIRRORD_E2E_PLUGIN="$root/bin/kubectl-mirrord" \
MIRRORD_E2E_ARTIFACTS="$artifacts" \
MIRRORD_E2E_DIST="$root/dist" \
MIRRORD_E2E_KREW="$root/bin/krew" \
MIRRORD_E2E_KREW_VALIDATOR="$root/bin/validate-krew-manifest" \
  go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/...

# The README's first command, on these clusters, checked against what the README says it prints.
echo "== make demo"
hack/demo.sh 2>&1 | tee "$artifacts/demo.log"
for want in 'CLUSTER_NAME=c2' 'hello from the ConfigMap of c2' '"cluster":"c2","method":"GET","path":"/from-your-machine"' \
  '"cluster":"c3","method":"GET","path":"/mirrored"' 'got GET /mirrored' '"cluster":"your machine","method":"GET","path":"/stolen"' \
  '"cluster":"c3","method":"GET","path":"/not-mine"' 'No resources found' 'make clusters-down'; do
  if ! grep -qF -- "$want" "$artifacts/demo.log"; then
    echo "demo: the output lacks what the README promises: $want" >&2
    exit 1
  fi
done
