package regex

import (
	"strings"
	"testing"
	"time"
)

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		expr     string
		match    []string
		noMatch  []string
		wantErr  bool
		wantFast bool // Go's regexp, linear time
	}{
		{expr: `^x-user: alice$`, match: []string{"x-user: alice"}, noMatch: []string{"x-user: bob"}, wantFast: true},
		// The probes-out steal of mirrord users' configs.
		{expr: `^User-Agent: (?!kube-probe)`, match: []string{"User-Agent: curl/8.0"}, noMatch: []string{"User-Agent: kube-probe/1.30"}},
		{expr: `^/api/(?!internal/)`, match: []string{"/api/users"}, noMatch: []string{"/api/internal/x"}},
		{expr: `(?<=Bearer )dev-\w+`, match: []string{"Authorization: Bearer dev-alice"}, noMatch: []string{"Authorization: Basic dev-alice"}},
		{expr: `^(\w+)-\1$`, match: []string{"ab-ab"}, noMatch: []string{"ab-cd"}},
		{expr: `(`, wantErr: true},
		{expr: `(?!`, wantErr: true},
	} {
		re, err := Compile(tc.expr)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: compiled", tc.expr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if _, fast := re.(backtracking); fast == tc.wantFast {
			t.Errorf("%q: backtracking = %v, want %v", tc.expr, fast, !tc.wantFast)
		}
		for _, s := range tc.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q", tc.expr, s)
			}
		}
		for _, s := range tc.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q matches %q", tc.expr, s)
			}
		}
	}
}

// A catastrophic pattern on a hostile input ends within its bound, as no match.
func TestBacktrackingIsBounded(t *testing.T) {
	re, err := Compile(`^(a+)+(?!x)b$`)
	if err != nil {
		t.Fatal(err)
	}
	before := TimedOut()
	start := time.Now()
	if re.MatchString(strings.Repeat("a", 5000) + "c") {
		t.Error("matched")
	}
	if took := time.Since(start); took > 20*MatchTimeout {
		t.Errorf("took %v, want about %v at most", took, MatchTimeout)
	}
	if TimedOut() == before {
		t.Error("the runaway match was not counted")
	}
}
