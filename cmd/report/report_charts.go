package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
)

// benchRegistryFamily is the registry family of the benchmark families
// that have no section spec of their own.
var benchRegistryFamily = map[string]string{
	"LockLatency":    "lock",
	"BucketLatency":  "bucket",
	"GoroutineChurn": "bucket",
	"RemoteLock":     "lock",
	"RemoteBucket":   "bucket",
}

// regFamily returns the registry family of g's implementations, or "" for
// benchmark-only ones (keyed limiters, floors).
func (r *report) regFamily(g groupID) string {
	if g.Family == "Correctness" {
		spec, _ := checkSpecOf(g.Check)
		return spec.family
	}
	for _, f := range familySpecs() {
		if f.bench == g.Family {
			return f.registry
		}
	}
	f := benchRegistryFamily[g.Family]
	if g.Backend != "" && f != "" {
		return g.Backend + " " + f
	}
	return f
}

// marked reports whether impl is registered in family as racy or broken:
// such implementations are marked on every chart and table.
func (r *report) marked(family, impl string) bool {
	i, ok := r.reg.lookup(family, impl)
	return ok && !i.Correct()
}

// label is impl as charts and tables name it: with its guarantee when it
// is racy or broken.
func (r *report) label(family, impl string) string {
	if i, ok := r.reg.lookup(family, impl); ok && !i.Correct() {
		return impl + " (" + i.Guarantee.String() + ")"
	}
	return impl
}

// seriesOf is impl's series in g.
func (r *report) seriesOf(g groupID, impl string, pts errXY) series {
	f := r.regFamily(g)
	return series{impl: impl, label: r.label(f, impl), marked: r.marked(f, impl), points: pts}
}

// barOf is impl's bar in g.
func (r *report) barOf(g groupID, impl string, p point, note string) bar {
	f := r.regFamily(g)
	return bar{label: r.label(f, impl), impl: impl, point: p, note: note, marked: r.marked(f, impl)}
}

// noteMissing notes on c the implementations of g it does not show, and
// why: not measured where the chart looks.
func (r *report) noteMissing(c *chart, g groupID, shown []string, where string) {
	var missing []string
	for _, impl := range r.d.Impls(g) {
		if !contains(shown, impl) {
			missing = append(missing, impl)
		}
	}
	if len(missing) > 0 {
		c.note("not shown: %s (no result %s)", strings.Join(missing, ", "), where)
	}
	if unmeasured := r.notBenchmarked(g); len(unmeasured) > 0 {
		c.note("not in this benchmark: %s (see What goes wrong)", strings.Join(unmeasured, ", "))
	}
	if elsewhere := r.onlyElsewhere(g); len(elsewhere) > 0 {
		c.note("not run in this workload: %s (measured in the family's others)", strings.Join(elsewhere, ", "))
	}
}

// onlyElsewhere lists the implementations that other groups of g's
// in-process family measured and g did not (a reference that runs on one
// clock only, a lock that cannot wait), so that a chart says why a name
// its neighbours show is missing.
func (r *report) onlyElsewhere(g groupID) []string {
	// Correctness groups are different families' checks, and the keyed
	// workloads compare different libraries by design.
	if g.Backend != "" || !slices.Contains([]string{"Counter", "Bucket", "Wait", "Lock", "Semaphore"}, g.Family) {
		return nil
	}
	here := r.d.Impls(g)
	var out []string
	for _, o := range r.d.Groups(g.Family) {
		if o == g {
			continue
		}
		for _, impl := range r.d.Impls(o) {
			if !slices.Contains(here, impl) && !slices.Contains(out, impl) {
				out = append(out, impl)
			}
		}
	}
	slices.Sort(out)
	return out
}

// notBenchmarked lists the registry's implementations of an in-process
// family that group g has no result for at all (controls measured only by
// the correctness checks), for a family whose benchmark runs every
// implementation it can; nil for a benchmark of a subset (Wait runs only
// the limiters) or of another tier.
func (r *report) notBenchmarked(g groupID) []string {
	if g.Backend != "" || !slices.Contains([]string{"Counter", "Bucket", "Lock", "Semaphore"}, g.Family) {
		return nil
	}
	family := r.regFamily(g)
	measured := r.d.Impls(g)
	var out []string
	for k := range r.reg {
		if k[0] == family && !slices.Contains(measured, k[1]) {
			out = append(out, k[1])
		}
	}
	slices.Sort(out)
	return out
}

// noteMarks explains the marking of racy and broken implementations when
// c shows one.
func (r *report) noteMarks(c *chart, g groupID, shown []string) {
	for _, impl := range shown {
		if r.marked(r.regFamily(g), impl) {
			c.note("(racy), (broken): fails its invariants, see What goes wrong; drawn dashed or pale")
			return
		}
	}
}

// oversubscribed returns where a GOMAXPROCS axis passes the machine's
// cores (between the core count and the next measured GOMAXPROCS), and
// the label for that region; NaN when no GOMAXPROCS exceeds them.
func (r *report) oversubscribed() (float64, string) {
	if r.cores <= 0 {
		return math.NaN(), ""
	}
	for _, p := range r.d.Procs() {
		if p > r.cores {
			return math.Sqrt(float64(r.cores) * float64(p)), fmt.Sprintf("GOMAXPROCS > %d cores: oversubscribed, not more parallel", r.cores)
		}
	}
	return math.NaN(), ""
}

// procTicks labels a GOMAXPROCS axis at the measured values.
func (r *report) procTicks() plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for _, p := range r.d.Procs() {
		ticks = append(ticks, plot.Tick{Value: float64(p), Label: strconv.Itoa(p)})
	}
	return ticks
}

// quantiles are the latency percentiles the lock benchmarks report; benchfmt
// tidies p50-ns to p50-sec.
var quantiles = []struct{ unit, label string }{{"p50-sec", "p50"}, {"p99-sec", "p99"}, {"p999-sec", "p99.9"}}

// percentileChart plots the latency percentiles of every implementation
// of g at goroutines and procs, as marks on a log axis, one column per
// percentile: percentiles are not a series, so no line joins them.
func (r *report) percentileChart(g groupID, goroutines string, procs int, title, what string) (*chart, error) {
	lo, hi := math.Inf(1), 0.0
	for _, impl := range r.d.Impls(g) {
		for _, q := range quantiles {
			if c := r.d.Cell(r.id(g, impl, goroutines, procs, q.unit)); c != nil && c.Summary.Center > 0 {
				lo, hi = math.Min(lo, c.Summary.Center), math.Max(hi, c.Summary.Center)
			}
		}
	}
	// On a log axis, the unit that reads best is the one of the middle
	// of the range, not of its top.
	unit, k := timeUnit(math.Sqrt(lo * hi))
	var ss []series
	var shown []string
	for _, impl := range r.d.Impls(g) {
		var pts errXY
		for i, q := range quantiles {
			c := r.d.Cell(r.id(g, impl, goroutines, procs, q.unit))
			if c == nil || c.Summary.Center <= 0 {
				continue
			}
			pts = append(pts, cellPoint(c, float64(i+1), times(k)).positive())
		}
		if len(pts) > 0 {
			ss = append(ss, r.seriesOf(g, impl, pts))
			shown = append(shown, impl)
		}
	}
	var ticks plot.ConstantTicks
	for i, q := range quantiles {
		ticks = append(ticks, plot.Tick{Value: float64(i + 1), Label: q.label})
	}
	c, err := lineChart(title, "percentile of "+what+" latency (marks spread within each column)", unit+" (log scale)", ss,
		lineOpts{logY: true, xTicks: ticks, noLines: true, spread: 0.5, shadeFrom: math.NaN()})
	if err != nil {
		return nil, err
	}
	r.noteMissing(c, g, shown, fmt.Sprintf("at %s goroutines, GOMAXPROCS %d", goroutines, procs))
	r.noteMarks(c, g, shown)
	return c, nil
}
