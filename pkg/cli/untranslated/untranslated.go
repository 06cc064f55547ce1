// Package untranslated keeps kubectl's translations from loading: kubectl-mirrord's help is
// English, and loading them (kubectl's i18n zips its .po and .mo files at the first i18n.T,
// which the get package's variables call at init) took 25 ms at every start of this binary,
// the agent's and the sandbox's included. kubectl documents the hook: an init that runs
// before any package calls i18n.T (Go initialises this package first, by import path order).
package untranslated

import "k8s.io/kubectl/pkg/util/i18n"

func init() {
	_ = i18n.SetLoadTranslationsFunc(func() error { return nil })
}
