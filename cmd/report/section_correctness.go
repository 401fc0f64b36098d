package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/contend-lab/contend/catalog"
)

// checkSpec is one BenchmarkCorrectness check: the registry family its
// implementations belong to, and how its part of "What goes wrong" is
// written.
type checkSpec struct {
	check, family string
	write         func(r *report, g groupID, c checkSpec) error
	title, doc    string
	// For lock-overlaps and semaphore-overflow: the unit tabled, its
	// column heading, the unit charted and its axis label, and the most a
	// correct implementation may reach (0 overlaps; the semaphore's
	// capacity, harness's benchSemCapacity).
	unit, what, chartUnit, xLabel string
	limit                         float64
}

// checkSpecs lists the checks, in the report's order.
func checkSpecs() []checkSpec {
	return []checkSpec{
		{check: "lost-updates", family: "counter", write: (*report).lostUpdates},
		{check: "grant-ratio", family: "bucket", write: (*report).grantRatio},
		{check: "wall-clock-step", family: "bucket", write: (*report).steppedCheck, title: "Wall clock vs monotonic clock",
			doc: "A bucket of capacity 100 at 1000 tokens/s is drained, then polled in 50 phases 1 ms apart by every goroutine; the wall clock is stepped forward by an hour at phases 25 and 50, as NTP or an administrator can do. Grant ratio = tokens granted / (capacity + rate × real elapsed time)."},
		{check: "large-clock", family: "bucket", write: (*report).steppedCheck, title: "float64 vs fixed point",
			doc: "A bucket of capacity 256 at 10⁹ tokens/s on a clock that starts at 1.7 × 10¹⁸ ns (a Unix time in nanoseconds; 54 years of uptime would do too) plus 127, advanced 16 times by 2 ns. A float64 holds such readings only to 256 ns, so the float bucket sees 256 ns pass where 2 did. Grant ratio = granted / (capacity + rate × elapsed)."},
		{check: "lock-overlaps", family: "lock", write: (*report).exclusion, title: "Exclusion: the racy lock",
			doc:  "Goroutines acquire, work about 50 ns and release for 20 ms through `contendtest.RunLock`, which counts critical sections entered while another goroutine was inside one.",
			unit: "overlap-fraction", what: "fraction of critical sections overlapped", chartUnit: "overlap-fraction", xLabel: "fraction of critical sections that overlapped another (0 is correct)"},
		{check: "semaphore-overflow", family: "semaphore", write: (*report).exclusion, title: "Capacity: the racy semaphore",
			doc:  "A semaphore of 4 permits; goroutines take one each for 20 ms through `contendtest.RunSemaphore`, which counts the permits held at once.",
			unit: "max-held", what: "most permits held at once (capacity 4)", chartUnit: "max-held", xLabel: "most permits held at once (a correct semaphore: at most 4)", limit: 4},
	}
}

// checkSpecOf returns the spec of check name.
func checkSpecOf(name string) (checkSpec, bool) {
	for _, c := range checkSpecs() {
		if c.check == name {
			return c, true
		}
	}
	return checkSpec{}, false
}

// whatGoesWrong writes the section built from BenchmarkCorrectness: what
// each broken design costs, measured.
func (r *report) whatGoesWrong() error {
	checks := r.d.Groups("Correctness")
	r.printf("## What goes wrong\n\n")
	if len(checks) == 0 {
		r.printf("No `BenchmarkCorrectness` results in the raw files: run `make bench`.\n\n")
	}
	r.printf("From `BenchmarkCorrectness`, which measures how wrong each implementation is rather than how fast. Each figure is the median over the samples, at 100 goroutines unless stated.\n\n")
	for _, g := range checks {
		spec, ok := checkSpecOf(g.Check)
		if !ok {
			continue
		}
		if err := spec.write(r, g, spec); err != nil {
			return err
		}
	}
	r.goroutineLeak()
	return r.raceExcerpt()
}

// lostUpdates tabulates lost-fraction for every counter at every
// GOMAXPROCS, and charts it at the highest.
func (r *report) lostUpdates(g groupID, spec checkSpec) error {
	r.printf("### Lost updates: the racy counter\n\n")
	r.printf("Every goroutine adds a known sequence; lost = expected sum − loaded sum, as a fraction of the expected sum.\n\n")
	r.procTable(g, "lost-fraction", "lost", func(v float64) string { return sig3(100*v) + "%" })
	for _, impl := range r.d.Impls(g) {
		if r.reg.correct(spec.family, impl) {
			if worst := r.worst(g, impl, "lost-updates"); worst > 0 {
				r.printf("**%s, declared correct, lost %s updates in one sample.** ", impl, sig3(worst))
			}
		}
	}
	var clean []string
	for _, impl := range r.d.Impls(g) {
		if r.worst(g, impl, "lost-updates") == 0 {
			clean = append(clean, "`"+impl+"`")
		}
	}
	if len(clean) > 0 {
		r.printf("%s lost nothing in any sample, at any GOMAXPROCS.\n\n", strings.Join(clean, ", "))
	}
	return r.ratioChart(g, "lost-fraction", "fraction of updates lost (0 is correct)", false, math.NaN(), "")
}

// grantRatio tabulates grant-ratio for every bucket and charts it.
func (r *report) grantRatio(g groupID, spec checkSpec) error {
	r.printf("### Over-grant: the racy bucket, the per-goroutine anti-pattern, and the references\n\n")
	r.printf("Goroutines ask a bucket of capacity 100 at 10,000 tokens/s for far more than it can give, for 50 ms on the real clock. Grant ratio = tokens granted / (capacity + rate × elapsed): at most 1 for a correct bucket, and above 1 is an over-grant.\n\n")
	r.procTable(g, "grant-ratio", "grant ratio", sig3)
	var over []string
	for _, impl := range r.d.Impls(g) {
		worst := r.worst(g, impl, "grant-ratio")
		if worst <= 1 {
			continue
		}
		info, _ := r.reg.lookup(spec.family, impl)
		label := info.Guarantee.String()
		if info.Reference {
			label = "reference"
		}
		over = append(over, fmt.Sprintf("`%s` (%s) up to %s×", impl, label, strconv.FormatFloat(worst, 'g', 5, 64)))
	}
	if len(over) > 0 {
		r.printf("Over-granted in at least one sample: %s. ", strings.Join(over, ", "))
	}
	r.printf("`per-goroutine` gives every goroutine a private bucket, so N goroutines get up to N times the limit.\n\n")
	for _, i := range r.cat.Family(spec.family, "") {
		why, ok := i.Deviations[catalog.StressDeviation]
		if !ok {
			continue
		}
		verdict := "did not over-grant in this run's samples"
		if w := r.worst(g, i.Name, "grant-ratio"); w > 1 {
			verdict = fmt.Sprintf("over-granted in this run, up to %s×", strconv.FormatFloat(w, 'g', 5, 64))
		}
		r.printf("The reference `%s` declares that it breaks the invariant under contention, and %s. Why: %s. It needs more runnable threads than cores (readings delayed between the clock and the mutex), so it shows at high GOMAXPROCS; the stress test at GOMAXPROCS 8 measured it, and `impls/reference` pins the mechanism deterministically.\n\n", i.Name, verdict, why)
	}
	return r.worstScenarioChart(g, spec)
}

// steppedCheck reports a deterministic scenario that compares a broken
// bucket with a correct one: which is which, the registry says.
func (r *report) steppedCheck(g groupID, spec checkSpec) error {
	r.printf("### %s\n\n%s\n\n", spec.title, spec.doc)
	r.procTable(g, "grant-ratio", "grant ratio", sig3)
	var broken, good string
	for _, impl := range r.d.Impls(g) {
		if r.reg.correct(spec.family, impl) {
			good = impl
		} else {
			broken = impl
		}
	}
	bad := r.d.Cell(r.id(g, broken, "100", r.mainP, "grant-ratio"))
	ok := r.d.Cell(r.id(g, good, "100", r.mainP, "grant-ratio"))
	if bad != nil && ok != nil {
		r.printf("`%s` granted %s× what real time allowed; the lab's `%s` bucket %s×.\n\n", broken, sig3(bad.Summary.Center), good, sig3(ok.Summary.Center))
	}
	return nil
}

// procTable writes, for each implementation of g at 100 goroutines, the
// median of unit at every GOMAXPROCS.
func (r *report) procTable(g groupID, unit, what string, format func(float64) string) {
	procs := r.d.Procs()
	r.printf("| %s, 100 goroutines |", what)
	for _, p := range procs {
		r.printf(" GOMAXPROCS %d |", p)
	}
	r.printf("\n|---|%s\n", strings.Repeat("---|", len(procs)))
	for _, impl := range r.d.Impls(g) {
		r.printf("| %s |", mdEscape(r.label(r.regFamily(g), impl)))
		for _, p := range procs {
			c := r.d.Cell(r.id(g, impl, "100", p, unit))
			if c == nil {
				r.printf(" |")
				continue
			}
			r.printf(" %s |", format(c.Summary.Center))
		}
		r.printf("\n")
	}
	r.printf("\n")
}

// worst returns the largest sample of unit for impl in g, over every
// goroutine count and GOMAXPROCS.
func (r *report) worst(g groupID, impl, unit string) float64 {
	w := math.Inf(-1)
	for id, c := range r.d.Cells {
		if id.group() != g || id.Impl != impl || id.Unit != unit {
			continue
		}
		for _, v := range c.Values {
			w = math.Max(w, v)
		}
	}
	return w
}

// ratioChart charts unit per implementation at 100 goroutines and the
// highest GOMAXPROCS, where concurrency does the most damage.
func (r *report) ratioChart(g groupID, unit, xLabel string, logX bool, ref float64, refLabel string) error {
	procs := r.d.Procs()
	p := procs[len(procs)-1]
	var cells []*Cell
	for _, impl := range r.d.Impls(g) {
		if c := r.d.Cell(r.id(g, impl, "100", p, unit)); c != nil {
			cells = append(cells, c)
		}
	}
	title := fmt.Sprintf("correctness, %s: 100 goroutines, GOMAXPROCS %d", g.Check, p)
	return r.cellBars(g, cells, false, title, xLabel, logX, ref, refLabel)
}

// cellBars charts one bar per cell, sorted, each labelled with its
// implementation and value (and, if scenario, its check and GOMAXPROCS).
func (r *report) cellBars(g groupID, cells []*Cell, scenario bool, title, xLabel string, logX bool, ref float64, refLabel string) error {
	var bars []bar
	var shown []string
	for _, c := range cells {
		v := c.Summary.Center
		if logX && v <= 0 {
			continue // a log axis cannot show it
		}
		pt := cellPoint(c, 0, times(1))
		if logX {
			pt = pt.positive()
		}
		b := r.barOf(g, c.ID.Impl, pt, sig3(v))
		if scenario {
			b.note = fmt.Sprintf("%s in %s, GOMAXPROCS %d", b.note, c.ID.Check, c.ID.Procs)
		}
		bars = append(bars, b)
		shown = append(shown, c.ID.Impl)
	}
	if len(bars) == 0 {
		return nil
	}
	sortBars(bars)
	c, err := hbarChart(title, xLabel, bars, logX, ref, refLabel)
	if err != nil {
		return err
	}
	r.noteMissing(c, g, shown, "to draw here")
	r.noteMarks(c, g, shown)
	return r.embed(c, r.chartName(g, "chart"), title)
}

// worstScenarioChart charts, for every bucket, the scenario and GOMAXPROCS
// (at 100 goroutines) where its median grant ratio is highest: a broken
// bucket is shown where it fails, not where it happens to hold.
func (r *report) worstScenarioChart(g groupID, spec checkSpec) error {
	worst := map[string]*Cell{}
	var order []string
	for _, cg := range r.d.Groups("Correctness") {
		if r.regFamily(cg) != spec.family {
			continue
		}
		for id, c := range r.d.Cells {
			if id.group() != cg || id.Goroutines != "100" || id.Unit != "grant-ratio" {
				continue
			}
			w, seen := worst[id.Impl]
			if !seen {
				order = append(order, id.Impl)
			}
			if !seen || c.Summary.Center > w.Summary.Center ||
				(c.Summary.Center == w.Summary.Center && (id.Check < w.ID.Check || id.Check == w.ID.Check && id.Procs < w.ID.Procs)) {
				worst[id.Impl] = c
			}
		}
	}
	sortImpls(order)
	var cells []*Cell
	for _, impl := range order {
		cells = append(cells, worst[impl])
	}
	title := "correctness, buckets: each one's worst scenario, 100 goroutines"
	return r.cellBars(g, cells, true, title, "tokens granted / (capacity + rate × elapsed), log scale", true, 1, "ratio 1, the most a correct bucket may grant")
}

// raceExcerpt quotes the race detector's report on the naive control.
func (r *report) raceExcerpt() error {
	r.printf("### The race detector on the naive control\n\n")
	path := filepath.Join(r.rawDir, "race-detector.log")
	if fi, err := os.Stat(r.rawDir); err == nil && !fi.IsDir() {
		path = filepath.Join(filepath.Dir(r.rawDir), "race-detector.log")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		r.printf("No `race-detector.log` beside the raw results; `make race` shows the report.\n\n")
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	const keep = 12
	if len(lines) > keep {
		lines = append(lines[:keep], "...")
	}
	r.printf("`make race` runs the naive counter and bucket from 8 goroutines under `go test -race`. The first report (full text in [`raw/race-detector.log`](raw/race-detector.log)):\n\n```\n%s\n```\n\n", strings.Join(lines, "\n"))
	r.printf("Every other implementation runs clean under `go test -race` in `make test`.\n\n")
	return nil
}

// exclusion reports a lock or semaphore check: a table of spec.unit per
// implementation and GOMAXPROCS, and a chart of spec.chartUnit.
func (r *report) exclusion(g groupID, spec checkSpec) error {
	r.printf("### %s\n\n%s\n\n", spec.title, spec.doc)
	r.procTable(g, spec.unit, spec.what, sig3)
	var broken []string
	for _, impl := range r.d.Impls(g) {
		if worst := r.worst(g, impl, spec.unit); worst > spec.limit {
			info, _ := r.reg.lookup(spec.family, impl)
			broken = append(broken, fmt.Sprintf("`%s` (%s): %s", impl, info.Guarantee, sig3(worst)))
		}
	}
	if len(broken) > 0 {
		r.printf("Broke the invariant in at least one sample (worst): %s. Every other implementation held it in every sample.\n\n", strings.Join(broken, ", "))
	}
	ref, refLabel := math.NaN(), ""
	if spec.limit > 0 {
		ref, refLabel = spec.limit, fmt.Sprintf("capacity %g, the most a correct semaphore holds", spec.limit)
	}
	return r.ratioChart(g, spec.chartUnit, spec.xLabel, false, ref, refLabel)
}
