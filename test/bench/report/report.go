// Package report collects benchmark rows into one file and prints them as one table: each
// row's median against a baseline measured in the same run, the ratio, and its target, with
// a description of the machine so runs can be compared.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Row is one measured quantity and, when it has one, its baseline.
type Row struct {
	// Name says what was measured ("200 sessions: created to all Ready").
	Name string `json:"name"`
	// Unit of the samples: "s", "ms", "MiB", "%", ...
	Unit string `json:"unit"`
	// Samples are the repetitions' values; the table shows their median.
	Samples []float64 `json:"samples"`
	// Baseline names what the row is compared with, measured in the same run ("" for none).
	Baseline string `json:"baseline,omitempty"`
	// BaselineSamples are the baseline's repetitions, in the same unit.
	BaselineSamples []float64 `json:"baselineSamples,omitempty"`
	// Target is the goal in words ("<= 60 s", "ratio <= 1.2").
	Target string `json:"target,omitempty"`
	// Met says whether the median meets Target (nil: no target).
	Met *bool `json:"met,omitempty"`
}

// Median of the row's samples.
func (r Row) Median() float64 { return Median(r.Samples) }

// Ratio is the row's median over its baseline's median (NaN without a baseline).
func (r Row) Ratio() float64 {
	if len(r.BaselineSamples) == 0 {
		return math.NaN()
	}
	return r.Median() / Median(r.BaselineSamples)
}

// AtMost sets Target and Met for "the median is at most max".
func (r *Row) AtMost(max float64) {
	r.Target = "<= " + format(max) + " " + r.Unit
	r.Met = ptr(r.Median() <= max)
}

// AtLeast sets Target and Met for "the median is at least min".
func (r *Row) AtLeast(min float64) {
	r.Target = ">= " + format(min) + " " + r.Unit
	r.Met = ptr(r.Median() >= min)
}

// RatioAtMost sets Target and Met for "median / baseline median is at most max".
func (r *Row) RatioAtMost(max float64) {
	r.Target = "ratio <= " + format(max)
	r.Met = ptr(r.Ratio() <= max)
}

// RatioAtLeast sets Target and Met for "median / baseline median is at least min".
func (r *Row) RatioAtLeast(min float64) {
	r.Target = "ratio >= " + format(min)
	r.Met = ptr(r.Ratio() >= min)
}

func ptr[T any](v T) *T { return &v }

// Median of xs (NaN when empty).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Append adds rows to the JSON-lines file at path (created if missing), so benchmarks in
// several packages and processes build one report.
func Append(path string, rows ...Row) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// Load reads the rows Append wrote.
func Load(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []Row
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; s.Scan(); n++ {
		if len(strings.TrimSpace(s.Text())) == 0 {
			continue
		}
		var r Row
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		rows = append(rows, r)
	}
	return rows, s.Err()
}

// Record adds rows to the run's report file (MIRRORD_BENCH_OUT, when set) and logs them:
// what every benchmark calls with its results.
func Record(tb testing.TB, rows ...Row) {
	tb.Helper()
	var b strings.Builder
	if err := Render(&b, rows, false); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("\n%s", b.String())
	if out := os.Getenv("MIRRORD_BENCH_OUT"); out != "" {
		if err := Append(out, rows...); err != nil {
			tb.Fatal(err)
		}
	}
}

// Render prints rows as one table (Markdown when markdown is set, for the README).
func Render(w io.Writer, rows []Row, markdown bool) error {
	opts := []tablewriter.Option{tablewriter.WithHeaderAutoFormat(tw.Off)}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	t := tablewriter.NewTable(w, opts...)
	t.Header("Benchmark", "Median", "n", "Baseline (same run)", "Baseline median", "Ratio", "Target", "Met")
	for _, r := range rows {
		base, baseMedian, ratio := "-", "-", "-"
		if len(r.BaselineSamples) > 0 {
			base = r.Baseline
			baseMedian = format(Median(r.BaselineSamples)) + " " + r.Unit
			ratio = format(r.Ratio()) + "x"
		}
		met, target := "-", "-"
		if r.Target != "" {
			target = r.Target
		}
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		if err := t.Append(r.Name, format(r.Median())+" "+r.Unit, strconv.Itoa(len(r.Samples)), base, baseMedian, ratio, target, met); err != nil {
			return err
		}
	}
	return t.Render()
}

// format prints v with three significant digits, without exponent for everyday magnitudes.
func format(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// Machine describes this machine in one line: CPU model and count, memory, kernel, Go.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d CPUs%s%s, %s %s/%s, %s", model, runtime.NumCPU(), mem, kernel,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
}
