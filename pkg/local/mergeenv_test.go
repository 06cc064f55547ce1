package local

import (
	"slices"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	got := mergeEnv(
		[]string{"PATH=/usr/bin", "HOME=/home/dev", "EDITOR=vi", "DB_URL=localhost", "NOVALUE"},
		map[string]string{"PATH": "/app/bin", "HOME": "/root", "DB_URL": "postgres.shop", "KUBERNETES_SERVICE_HOST": "10.0.0.1", "TERM": "dumb"},
	)
	want := []string{
		"DB_URL=postgres.shop",             // the target's value wins
		"EDITOR=vi",                        // the developer's own stays
		"HOME=/home/dev",                   // the developer's machine, not the pod
		"KUBERNETES_SERVICE_HOST=10.0.0.1", // the target's only
		"PATH=/usr/bin",
		"TERM=dumb", // a kept variable the developer lacks comes from the target
	}
	if !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q\nwant      %q", got, want)
	}
}
