package installcmd

import (
	"strings"
	"testing"
)

func TestDefaultImage(t *testing.T) {
	for v, want := range map[string]string{
		"v0.1.0":                  "ghcr.io/kubectl-mirrord/kubectl-mirrord:v0.1.0",
		"v1.2.3-rc.1":             "ghcr.io/kubectl-mirrord/kubectl-mirrord:v1.2.3-rc.1",
		"dev":                     "development build",
		"bd45ba5":                 "development build",
		"v0.1.0-3-gbd45ba5-dirty": "development build",
		"v0.1.0-dirty":            "development build",
	} {
		got, err := DefaultImage("ghcr.io/kubectl-mirrord/kubectl-mirrord", v)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("DefaultImage(%q) = %q, want %q", v, got, want)
		}
	}
}
