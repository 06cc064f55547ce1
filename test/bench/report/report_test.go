package report

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestTargets(t *testing.T) {
	r := Row{Unit: "s", Samples: []float64{50, 70, 55}, BaselineSamples: []float64{20, 25, 30}}
	r.AtMost(60)
	if !*r.Met || r.Target != "<= 60.0 s" {
		t.Errorf("AtMost(60) with median 55: met %v target %q", *r.Met, r.Target)
	}
	r.RatioAtMost(2)
	if *r.Met { // 55/25 = 2.2
		t.Errorf("RatioAtMost(2) met with ratio %v", r.Ratio())
	}
	r.RatioAtLeast(2)
	if !*r.Met {
		t.Errorf("RatioAtLeast(2) not met with ratio %v", r.Ratio())
	}
}

func TestAppendLoadRender(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.jsonl")
	a := Row{Name: "sessions Ready", Unit: "s", Samples: []float64{12, 10, 11}, Baseline: "bare Jobs Ready", BaselineSamples: []float64{8, 8, 9}}
	a.AtMost(60)
	b := Row{Name: "controller peak memory", Unit: "MiB", Samples: []float64{80}}
	if err := Append(path, a); err != nil {
		t.Fatal(err)
	}
	if err := Append(path, b); err != nil {
		t.Fatal(err)
	}
	rows, err := Load(path)
	if err != nil || len(rows) != 2 {
		t.Fatalf("Load: %d rows, %v", len(rows), err)
	}
	var out bytes.Buffer
	if err := Render(&out, rows, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sessions Ready", "11.0 s", "8.00 s", "1.38x", "<= 60.0 s", "yes", "controller peak memory", "80.0 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
