#!/usr/bin/env bash
# The local rig's clusters, for machines with Docker: three kind clusters, the project's
# and the sample app's images loaded, and the same e2e suite.
#
#   test/kind/run.sh up      create the clusters and load images
#   test/kind/run.sh e2e     run the e2e suite against them
#   test/kind/run.sh down    delete the clusters
#
# Kubeconfigs use each cluster's address on the kind Docker network, so pods of one
# cluster reach the API servers of the others, as the Primary's controller must.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
clusters=${CLUSTERS:-3}
kubeconfigs=${KIND_KUBECONFIG_DIR:-$root/_artifacts/kind}

up() {
  command -v kind >/dev/null || { echo "kind is not installed: go install sigs.k8s.io/kind@latest" >&2; exit 1; }
  make --no-print-directory image rig
  bin/rig images bin/images
  mkdir -p "$kubeconfigs"
  for i in $(seq 1 "$clusters"); do
    kind create cluster --config "test/kind/c$i.yaml" --wait 120s
    for img in bin/images/kubectl-mirrord.tar bin/images/echo.tar; do
      kind load image-archive "$img" --name "mirrord-c$i"
    done
    kind get kubeconfig --internal --name "mirrord-c$i" > "$kubeconfigs/c$i.internal.yaml"
    kind get kubeconfig --name "mirrord-c$i" > "$kubeconfigs/c$i.yaml"
  done
  echo "kubeconfigs: $kubeconfigs"
}

e2e() {
  MIRRORD_E2E_KUBECONFIGS=$(ls "$kubeconfigs"/c*[0-9].yaml | paste -sd,) \
  MIRRORD_E2E_INTERNAL_KUBECONFIGS=$(ls "$kubeconfigs"/c*.internal.yaml | paste -sd,) \
  MIRRORD_E2E_COLLECT_LOGS="kind export logs --name mirrord-c1" \
    go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/...
}

down() {
  for i in $(seq 1 "$clusters"); do kind delete cluster --name "mirrord-c$i"; done
}

"${1:?usage: test/kind/run.sh up|e2e|down}"
