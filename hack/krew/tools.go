//go:build tools

// Package tools pins krew (v0.4.4: the newest the module proxy serves here) for the test that
// installs the plugin the way users do, and krew's own manifest validator.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
