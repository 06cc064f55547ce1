// Command benchreport prints the rows `make bench` collected as one table, preceded by the
// machine's description, and exits 1 when a row misses its target or none were recorded.
//
//	benchreport [-markdown] FILE.jsonl
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
)

func main() {
	markdown := flag.Bool("markdown", false, "print a Markdown table (for the README)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchreport [-markdown] FILE.jsonl")
		os.Exit(2)
	}
	rows, err := report.Load(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Printf("kubectl-mirrord benchmarks, %s\nmachine: %s\n\n", time.Now().UTC().Format(time.RFC3339), report.Machine())
	if err := report.Render(os.Stdout, rows, *markdown); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	missed := 0
	for _, r := range rows {
		if r.Met != nil && !*r.Met {
			missed++
		}
	}
	switch {
	case len(rows) == 0:
		fmt.Println("\nno benchmark recorded a row: see the log above")
		os.Exit(1)
	case missed > 0:
		fmt.Printf("\n%d of %d rows missed their target\n", missed, len(rows))
		os.Exit(1)
	}
	fmt.Printf("\nall %d rows met their targets (or have none)\n", len(rows))
}
