package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// memoryFamilies are BenchmarkMemory's workloads, in the table's order:
// the registry family each measures, and its unit.
var memoryFamilies = []struct{ workload, unit string }{
	{"counter", "B/instance"},
	{"bucket", "B/instance"},
	{"lock", "B/instance"},
	{"semaphore", "B/instance"},
	{"keyed", "B/key"},
}

// minObject is the smallest heap object, 8 bytes: a difference in the
// memory benchmarks smaller than it is noise, not memory held. The
// measurements' noise is well under it (harness/bench_memory_test.go).
const minObject = 8

// memory writes the Memory section from BenchmarkMemory: bytes per
// instance of every counter, bucket, lock and semaphore, and per key of
// every keyed limiter, at every GOMAXPROCS measured.
func (r *report) memory() error {
	if len(r.d.Groups("Memory")) == 0 {
		return nil
	}
	procs := r.familyProcs("Memory")
	r.printf("## Memory\n\n")
	r.printf("From `BenchmarkMemory`: instances of each implementation are built and each used once (one `Add`, `TryTake(1)`, or `Acquire` and `Release`; semaphores of 4 permits), all kept reachable, and the growth of the live heap after a GC (`runtime.MemStats.HeapAlloc`) is divided by their number: bytes per instance. It includes what an instance points to, so sizes set by GOMAXPROCS at construction show in their column. A keyed limiter's figure is per key, after 10,000 new keys: its buckets and its map together. Medians over the samples; the measurement resolves about 1 byte.\n\n")
	r.tableHeader([]string{"family", "impl"}, procs)
	var grows []string
	for _, f := range memoryFamilies {
		g := groupID{Family: "Memory", Workload: f.workload}
		for _, impl := range r.d.Impls(g) {
			r.printf("| %s | %s |", f.workload, mdEscape(r.label(f.workload, impl)))
			var cells []*Cell
			for _, p := range procs {
				c := r.d.Cell(r.id(g, impl, "1", p, f.unit))
				if c == nil {
					r.printf(" – |")
					continue
				}
				cells = append(cells, c)
				r.printf(" %s |", fmtWholeBytes(c.Summary.Center))
			}
			r.printf("\n")
			if n := len(cells); n > 1 && cells[n-1].Summary.Center >= cells[0].Summary.Center+minObject {
				var bytes, at []string
				for _, c := range cells {
					bytes = append(bytes, fmtWholeBytes(c.Summary.Center))
					at = append(at, strconv.Itoa(c.ID.Procs))
				}
				grows = append(grows, fmt.Sprintf("%s `%s` %s B at GOMAXPROCS %s", f.workload, impl, strings.Join(bytes, ", "), strings.Join(at, ", ")))
			}
		}
	}
	r.printf("\n")
	var notes []string
	if len(grows) > 0 {
		notes = append(notes, fmt.Sprintf("Depend on GOMAXPROCS at construction: %s. The others do not.", strings.Join(grows, "; ")))
	}
	if leaks := r.leakers(); len(leaks) > 0 {
		var s []string
		for _, c := range leaks {
			s = append(s, fmt.Sprintf("`%s` keeps %s B more for every goroutine that ever calls it", c.ID.Impl, fmtWholeBytes(c.Summary.Center)))
		}
		notes = append(notes, fmt.Sprintf("A bucket's figure is after one goroutine's call: %s (see What goes wrong).", strings.Join(s, ", ")))
	}
	if len(notes) > 0 {
		r.printf("%s\n\n", strings.Join(notes, " "))
	}
	return nil
}

// familyProcs returns the GOMAXPROCS values measured in any group of
// family, ascending.
func (r *report) familyProcs(family string) []int {
	seen := map[int]bool{}
	for _, g := range r.d.Groups(family) {
		for _, p := range r.procsOf(g) {
			seen[p] = true
		}
	}
	var ps []int
	for _, p := range r.d.Procs() {
		if seen[p] {
			ps = append(ps, p)
		}
	}
	return ps
}

// churnGroup is BenchmarkGoroutineChurn's only group.
var churnGroup = groupID{Family: "GoroutineChurn"}

// churnGoroutines returns the goroutines= value of BenchmarkGoroutineChurn:
// how many goroutines came and went.
func (r *report) churnGoroutines() string {
	gcs := r.d.GoroutineCounts(churnGroup)
	if len(gcs) == 0 {
		return ""
	}
	return gcs[len(gcs)-1]
}

// leakers returns the cells of the buckets that kept at least minObject
// bytes per goroutine in BenchmarkGoroutineChurn, at mainP (or the highest
// GOMAXPROCS measured, if it was not).
func (r *report) leakers() []*Cell {
	procs := r.procsOf(churnGroup)
	if len(procs) == 0 {
		return nil
	}
	p := procs[len(procs)-1]
	if slices.Contains(procs, r.mainP) {
		p = r.mainP
	}
	var out []*Cell
	for _, impl := range r.d.Impls(churnGroup) {
		if c := r.d.Cell(r.id(churnGroup, impl, r.churnGoroutines(), p, "B/goroutine")); c != nil && c.Summary.Center >= minObject {
			out = append(out, c)
		}
	}
	return out
}

// goroutineLeak writes What goes wrong's part on per-goroutine state, from
// BenchmarkGoroutineChurn: what each bucket still holds for goroutines
// that have exited.
func (r *report) goroutineLeak() {
	n := r.churnGoroutines()
	if n == "" {
		return
	}
	count, _ := strconv.Atoi(n)
	r.printf("### Leak: per-goroutine state outlives its goroutines\n\n")
	r.printf("From `BenchmarkGoroutineChurn`: %s short-lived goroutines, 100 at a time, each take one token from the same bucket and exit; then a GC. Bytes still held = the growth of the live heap over the run (`runtime.MemStats.HeapAlloc`, the bucket built before it), per goroutine. Nothing tells a bucket that a goroutine has exited, so state kept per goroutine stays for as long as the bucket.\n\n", thousands(count))
	procs := r.procsOf(churnGroup)
	r.tableHeader([]string{fmt.Sprintf("bytes held per exited goroutine, %s goroutines", thousands(count))}, procs)
	for _, impl := range r.d.Impls(churnGroup) {
		r.printf("| %s |", mdEscape(r.label("bucket", impl)))
		for _, p := range procs {
			if c := r.d.Cell(r.id(churnGroup, impl, n, p, "B/goroutine")); c != nil {
				r.printf(" %s |", fmtSmallBytes(c.Summary.Center))
			} else {
				r.printf(" |")
			}
		}
		r.printf("\n")
	}
	r.printf("\n")
	leaks := r.leakers()
	noise := 0.0
	for _, impl := range r.d.Impls(churnGroup) {
		if !containsCell(leaks, impl) {
			noise = math.Max(noise, r.worstAbs(churnGroup, impl, "B/goroutine"))
		}
	}
	for _, c := range leaks {
		r.printf("`%s` still held %s B for each goroutine that had called it and exited, %s after %s goroutines at GOMAXPROCS %d, and grows with every new one. ",
			c.ID.Impl, fmtWholeBytes(c.Summary.Center), fmtBytes(c.Summary.Center*float64(count)), thousands(count), c.ID.Procs)
	}
	every := "Every bucket"
	if len(leaks) > 0 {
		every = "Every other bucket"
	}
	r.printf("%s held nothing per goroutine: at most %s B either way in any sample, the measurement's noise.\n\n", every, fmtSmallBytes(noise))
}

// thousands formats n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fmtWholeBytes formats a byte count to the byte, the resolution of the
// memory benchmarks.
func fmtWholeBytes(v float64) string { return strconv.FormatFloat(math.Round(v), 'f', 0, 64) }

// fmtSmallBytes formats a byte count near zero to a tenth of a byte, with
// no negative zero.
func fmtSmallBytes(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if s == "-0.0" {
		return "0.0"
	}
	return s
}

// fmtBytes formats a byte count with 3 significant digits and B, kB, MB or
// GB (powers of 1000).
func fmtBytes(v float64) string {
	if math.Abs(v) < 1e3 {
		return fmtCount(v) + " B"
	}
	return fmtCount(v) + "B"
}

// tableHeader writes a Markdown table's header: the lead columns, then
// one per GOMAXPROCS.
func (r *report) tableHeader(lead []string, procs []int) {
	r.printf("|")
	for _, l := range lead {
		r.printf(" %s |", l)
	}
	for _, p := range procs {
		r.printf(" GOMAXPROCS %d |", p)
	}
	r.printf("\n|%s\n", strings.Repeat("---|", len(lead)+len(procs)))
}

// containsCell reports whether cells has one of impl.
func containsCell(cells []*Cell, impl string) bool {
	for _, c := range cells {
		if c.ID.Impl == impl {
			return true
		}
	}
	return false
}

// worstAbs returns the largest absolute sample of unit for impl in g.
func (r *report) worstAbs(g groupID, impl, unit string) float64 {
	w := 0.0
	for id, c := range r.d.Cells {
		if id.group() != g || id.Impl != impl || id.Unit != unit {
			continue
		}
		for _, v := range c.Values {
			w = math.Max(w, math.Abs(v))
		}
	}
	return w
}
