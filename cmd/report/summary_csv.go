package main

import (
	"encoding/csv"
	"os"
	"sort"
	"strconv"
)

// csvHeader is summary.csv's header. median, ci_low and ci_high are in the
// unit's benchfmt form (sec/op for time, as benchstat prints it); the CI
// columns are empty when there were fewer than 6 samples.
var csvHeader = []string{"family", "backend", "workload", "clock", "check", "impl", "goroutines", "gomaxprocs", "unit", "n", "median", "ci_low", "ci_high", "benchmark"}

// writeCSV writes one row per cell, sorted.
func writeCSV(d *Data, path string) error {
	cells := make([]*Cell, 0, len(d.Cells))
	for _, c := range d.Cells {
		cells = append(cells, c)
	}
	order := implOrder()
	sort.Slice(cells, func(i, j int) bool {
		a, b := cells[i].ID, cells[j].ID
		switch {
		case a.Family != b.Family:
			return a.Family < b.Family
		case a.Backend != b.Backend:
			return a.Backend < b.Backend
		case a.Workload != b.Workload:
			if ra, rb := workloadRank(a.Workload), workloadRank(b.Workload); ra != rb {
				return ra < rb
			}
			return a.Workload < b.Workload
		case a.Clock != b.Clock:
			return a.Clock > b.Clock
		case a.Check != b.Check:
			return checkRank(a.Check) < checkRank(b.Check)
		case a.Impl != b.Impl:
			if ra, rb := rank(order, a.Impl), rank(order, b.Impl); ra != rb {
				return ra < rb
			}
			return a.Impl < b.Impl
		case a.Goroutines != b.Goroutines:
			return goroutinesRank(a.Goroutines) < goroutinesRank(b.Goroutines)
		case a.Procs != b.Procs:
			return a.Procs < b.Procs
		}
		return a.Unit < b.Unit
	})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(csvHeader)
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, c := range cells {
		id := c.ID
		lo, hi := "", ""
		if c.HasCI {
			lo, hi = num(c.Summary.Lo), num(c.Summary.Hi)
		}
		w.Write([]string{id.Family, id.Backend, id.Workload, id.Clock, id.Check, id.Impl, id.Goroutines, strconv.Itoa(id.Procs), id.Unit,
			strconv.Itoa(len(c.Values)), num(c.Summary.Center), lo, hi, c.Name})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
