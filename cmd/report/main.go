// Command report turns raw benchmark output into the lab's report.
//
//	go run ./cmd/report -raw results/raw -out results
//
// It reads every *.txt file in -raw with golang.org/x/perf's benchfmt,
// groups results with benchproc, computes medians, 95% confidence intervals
// and comparisons with benchmath (the statistics benchstat uses), and
// writes to -out:
//
//	REPORT.md           the report, readable on GitHub: what to use, then the evidence
//	details.md          every group at every GOMAXPROCS, and the fault evidence
//	readme-numbers.md   the measured numbers README quotes, from the same run
//	charts/*.svg        the charts (gonum.org/v1/plot), and the same as *.png
//	summary.csv         one row per benchmark cell and unit: n, median, CI
//
// A missing, empty or corrupt raw file is an error naming the file (and the
// line, for a syntax error); nothing is written then.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := fs.String("raw", "results/raw", "directory of raw `go test -bench` output (*.txt), or one file")
	out := fs.String("out", "results", "directory to write REPORT.md, summary.csv and charts/ into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	d, err := Load(*raw)
	if err != nil {
		return err
	}
	if len(d.Procs()) == 0 {
		return errors.New("no benchmark cells")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	// Charts are regenerated from scratch, so a chart that is no longer
	// produced does not linger.
	old, _ := filepath.Glob(filepath.Join(*out, "charts", "*"))
	for _, f := range old {
		os.Remove(f)
	}
	r := newReport(d, *raw, *out)
	if err := r.write(*out); err != nil {
		return err
	}
	return writeCSV(d, filepath.Join(*out, "summary.csv"))
}
