#!/usr/bin/env bash
# Regenerates everything derived from pkg/apis: deepcopy, the typed clientset, listers,
# informers (k8s.io/code-generator) and the CRD YAML in manifests/crds (controller-gen).
# The generators come from hack/tools, built into ./bin by `make tools`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/bin"
module=github.com/kubectl-mirrord/kubectl-mirrord
header="$root/hack/boilerplate.go.txt"
apis=(./pkg/apis/mirrord/v1alpha1)
out=pkg/generated

"$bin/deepcopy-gen" --output-file zz_generated.deepcopy.go --go-header-file "$header" "${apis[@]}"

rm -rf "$out"
"$bin/client-gen" --go-header-file "$header" \
  --output-dir "$out/clientset" --output-pkg "$module/$out/clientset" \
  --clientset-name versioned \
  --input-base "$module/pkg/apis" --input mirrord/v1alpha1
"$bin/lister-gen" --go-header-file "$header" \
  --output-dir "$out/listers" --output-pkg "$module/$out/listers" "${apis[@]}"
"$bin/informer-gen" --go-header-file "$header" \
  --output-dir "$out/informers" --output-pkg "$module/$out/informers" \
  --versioned-clientset-package "$module/$out/clientset/versioned" \
  --listers-package "$module/$out/listers" "${apis[@]}"

rm -rf manifests/crds
"$bin/controller-gen" crd:maxDescLen=400 paths=./pkg/apis/... output:crd:artifacts:config=manifests/crds
