#!/usr/bin/env bash
# Fails when anything generated is stale (deepcopy, clientset, listers, informers, CRDs),
# when Go code is unformatted, when a go.mod is untidy, or when go vet complains.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fail=0

generated=(pkg/generated manifests/crds pkg/apis/mirrord/v1alpha1/zz_generated.deepcopy.go)
tmp=$(mktemp -d)
difffile=$(mktemp)
trap 'rm -rf "$tmp" "$difffile"' EXIT
cp -a --parents "${generated[@]}" "$tmp/"
hack/update-codegen.sh
for g in "${generated[@]}"; do
  if ! diff -r "$tmp/$g" "$g" >"$difffile" 2>&1; then
    echo "verify: $g is stale; run 'make generate' and commit the result:" >&2
    head -40 "$difffile" >&2
    fail=1
  fi
done
if [ "$fail" -ne 0 ]; then
  # Leave the tree as it was: the generated files the developer has are restored.
  for g in "${generated[@]}"; do rm -rf "$g"; done
  cp -a "$tmp"/. .
fi

unformatted=$(gofmt -l cmd pkg hack test)
if [ -n "$unformatted" ]; then
  echo "verify: unformatted Go files (run 'make fmt'):" >&2
  echo "$unformatted" >&2
  fail=1
fi

for mod in . hack/tools hack/krew hack/lint test/rig/tools/*/; do
  if ! (cd "$mod" && go mod tidy -diff >/dev/null 2>&1); then
    echo "verify: $mod/go.mod is not tidy; run 'go mod tidy' in $mod" >&2
    fail=1
  fi
done

go vet ./... || fail=1
go vet -tags e2e ./test/e2e/... || fail=1
go vet -tags bench ./test/bench/... || fail=1

# The plugin ships for macOS too (krew): it must keep building there (proxy mode).
for platform in darwin/amd64 darwin/arm64 linux/arm64; do
  if ! GOOS=${platform%/*} GOARCH=${platform#*/} CGO_ENABLED=0 go build -o /dev/null ./cmd/kubectl-mirrord; then
    echo "verify: kubectl-mirrord does not build for $platform" >&2
    fail=1
  fi
done

if [ "$fail" -ne 0 ]; then
  exit 1
fi
echo "verify: generated code, formatting, go.mod files, vet and cross-builds are clean"
