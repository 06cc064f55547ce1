// Package kubectlmirrord carries the installation's manifests (the kustomize tree and the CRDs
// it refers to) into the binary, so `kubectl mirrord install` needs no checkout: the files
// an admin runs `kustomize build` on are the files the plugin renders.
package kubectlmirrord

import "embed"

// Manifests holds kustomize/ and manifests/crds/ at their paths in the repository.
//
//go:embed kustomize manifests/crds
var Manifests embed.FS
