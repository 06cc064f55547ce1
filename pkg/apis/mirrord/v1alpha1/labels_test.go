package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 70)
	for in, want := range map[string]string{
		"alice":                             "alice",
		"alice@example.com":                 "alice-example.com",
		"system:serviceaccount:dev:builder": "system-serviceaccount-dev-builder",
		"-odd.":                             "odd",
		"":                                  "",
		long:                                strings.Repeat("a", 54) + "-",
	} {
		got := LabelValue(in)
		if !strings.HasPrefix(got, want) || (in != long && got != want) {
			t.Errorf("LabelValue(%q) = %q, want %q", in, got, want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q is not a label value: %v", in, got, errs)
		}
	}
	if a, b := LabelValue(long), LabelValue(long+"b"); a == b || len(a) > 63 {
		t.Errorf("long values: %q and %q", a, b)
	}
}

func TestSessionLabels(t *testing.T) {
	got := SessionLabels(&MirrordSessionSpec{Owner: "alice@example.com", Target: Target{Kind: "Deployment", Name: "api"}})
	if got[LabelOwner] != "alice-example.com" || got[LabelTargetKind] != "deployment" || got[LabelTargetName] != "api" {
		t.Errorf("SessionLabels = %v", got)
	}
}
