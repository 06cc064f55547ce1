#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit tests, verify, then the e2e suite on fresh
# local clusters. Along the way it times `make clusters` (the first run builds whatever
# is not cached yet; the second is warm) and proves that teardown leaves nothing behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ -e /var/lib/mirrord-rig ]; then
  echo "test: local clusters are already up (/var/lib/mirrord-rig); run 'make clusters-down' first" >&2
  exit 1
fi

# What the tests need from Debian first (the agent's steal tests run iptables), then the
# host's state before anything runs: the agent's unit tests make network namespaces,
# veths and nftables tables, and the rig much more; after teardown nothing may differ.
make --no-print-directory deps rig
mkdir -p "${ARTIFACTS:-$root/_artifacts}"
export MIRRORD_HOST_BASELINE="${ARTIFACTS:-$root/_artifacts}/host-before.json"
bin/rig snapshot "$MIRRORD_HOST_BASELINE"

echo "== unit tests (the controllers' on a real API server without nodes)"
make --no-print-directory unit
echo "== fuzz targets, bounded"
make --no-print-directory fuzz
echo "== leftovers of the unit tests"
bin/rig check "$MIRRORD_HOST_BASELINE"
echo "== verify"
make --no-print-directory verify
echo "== e2e on local clusters"
make --no-print-directory deps rig image build dist krew
# Everything below runs under a subreaper so no rig process can outlive the suite,
# even on machines whose init does not reap orphans.
exec bin/rig subreaper -- hack/e2e-local.sh
