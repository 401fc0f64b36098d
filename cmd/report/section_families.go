package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// familySpec is one benchmark family's section: its benchmark name, its
// registry family, the implementation its deltas are measured against, the
// words that introduce it, how its groups are drawn, and what follows them.
type familySpec struct {
	bench, title, registry, baseline, intro string
	// groups writes the family's groups; nil: [report.workloadGroups].
	groups func(r *report, gs []groupID) error
	// after writes what follows the groups (latency percentiles), or nil.
	after func(r *report) error
}

// familySpecs are the benchmark families, in the report's order.
func familySpecs() []familySpec {
	return []familySpec{
		{bench: "Counter", title: "Counters", registry: "counter", baseline: "mutex",
			intro: "A shared int64 that goroutines `Add` to and `Load`. Benchmarks: `BenchmarkCounter/workload=<w>/impl=<name>/goroutines=<g>`."},
		{bench: "Bucket", title: "Token buckets", registry: "bucket", baseline: "mutex", after: (*report).bucketLatency,
			intro: "A token bucket: `TryTake(n)` takes n tokens at once or none. Benchmarks: `BenchmarkBucket/workload=<w>/clock=<real|frozen>/impl=<name>/goroutines=<g>`. Every call reads the clock; on the frozen clock (a `ManualClock` nobody advances) that read costs almost nothing, which separates the clock's cost from the synchronisation's."},
		{bench: "Wait", title: "Waiting for tokens", registry: "bucket", baseline: "xrate-wait", after: (*report).waitLateness,
			intro: "The blocking path a worker uses: `Wait(ctx, 1)` on the lab's buckets, against `golang.org/x/time/rate`'s `Wait` (`xrate-wait`) and `go.uber.org/ratelimit`'s `Take` (`uber-take`). Benchmarks: `BenchmarkWait/workload=<unblocked|paced>/impl=<name>/goroutines=<g>`. *unblocked*: a rate that never makes anyone wait, so time/op is the synchronisation around a Wait; *paced*: a burst of 1 at a fixed rate, which the goroutines ask for as fast as they are let through: what matters there is how late each wake-up is against the schedule (below)."},
		{bench: "Keyed", title: "Keyed limiters (per-client buckets)", baseline: "mutex-map", groups: (*report).keyed,
			intro: "How servers use rate limiters: one bucket per client key, 10,000 keys, requests drawn from a Zipf distribution (a few keys are hot). *zipf*: uint64 keys, comparing the map that holds the buckets; *zipf-string*: string keys, the lab's `keyed.Limiter` against the keyed limiters users already run (`go-limiter`, x/time/rate in a `sync.Map`)."},
		{bench: "Lock", title: "Locks", registry: "lock", baseline: "mutex", after: (*report).lockLatency,
			intro: "Mutual exclusion: `Acquire` (with `context.Background()`), a critical section, `Release` of a `contend.Lock`. Benchmarks: `BenchmarkLock/workload=<empty|work>/impl=<name>/goroutines=<g>`, run for 20 ms each rather than a fixed count, because the ticket lock convoys when goroutines outnumber Ps."},
		{bench: "Semaphore", title: "Semaphores", registry: "semaphore", baseline: "xsemaphore",
			intro: "A `contend.Semaphore` of 4 permits: `Acquire(1)`, a critical section, `Release`. Benchmarks: `BenchmarkSemaphore/workload=<empty|work>/impl=<name>/goroutines=<g>`; the baseline is `golang.org/x/sync/semaphore` (`xsemaphore`)."},
	}

}

// workloadBaselines names, for a workload whose family's baseline does not
// run in it, the implementation its deltas are measured against instead.
var workloadBaselines = map[string]map[string]string{
	"Keyed": {"zipf-string": "go-limiter"}, // string keys: the keyed library users run
}

// baselineOf returns the implementation group g's deltas are measured
// against: its workload's, or else its family's.
func baselineOf(g groupID) string {
	if b, ok := workloadBaselines[g.Family][g.Workload]; ok {
		return b
	}
	for _, f := range familySpecs() {
		if f.bench == g.Family {
			return f.baseline
		}
	}
	return "mutex"
}

// family writes one family's section.
func (r *report) family(f familySpec) error {
	groups := r.d.Groups(f.bench)
	if len(groups) == 0 {
		return nil
	}
	r.printf("## %s\n\n", f.title)
	r.printf("%s\n\n", f.intro)
	write := f.groups
	if write == nil {
		write = (*report).workloadGroups
	}
	if err := write(r, groups); err != nil {
		return err
	}
	if f.after != nil {
		return f.after(r)
	}
	return nil
}

// workloadGroups writes, per group, the scaling chart, the bars at 100
// goroutines, and the table at mainP.
func (r *report) workloadGroups(groups []groupID) error {
	for _, g := range groups {
		r.printf("### %s\n\n", describeGroup(g))
		if s := workloadDoc[g.Workload]; s != "" {
			r.printf("%s", s)
			if g.Clock != "" {
				r.printf(" %s", clockDoc[g.Clock])
			}
			r.printf("\n\n")
		}
		if err := r.scalingChart(g); err != nil {
			return err
		}
		if err := r.barChart(g, "100", r.mainP); err != nil {
			return err
		}
		r.compactTable(g, r.mainP)
	}
	return nil
}

var workloadDoc = map[string]string{
	"add-only":     "Every operation is `Add`: the write path under contention.",
	"read-mostly":  "One `Add` in 16 operations, the rest `Load`: a counter that is read far more than written (a metrics gauge scraped by many readers).",
	"always-grant": "Capacity and rate so large that every request is granted: the cost of synchronising a grant.",
	"mostly-deny":  "An empty bucket with a tiny rate: almost every request is denied, the path a limiter takes under overload.",
	"near-limit":   "Demand just above the rate: grants and denials mixed, the bucket hovering near empty.",
	"empty":        "An empty critical section: the cost of the lock itself and of handing it over.",
	"work":         "A critical section of about 50 ns of arithmetic (`contendtest.Work`): contention with a holder that does something.",
}

var clockDoc = map[string]string{
	"real":   "On the real monotonic clock.",
	"frozen": "On a frozen clock, to remove the cost of reading time.",
}

// scalingChart plots throughput against GOMAXPROCS at one goroutine per P,
// with the GOMAXPROCS beyond the machine's cores shaded.
func (r *report) scalingChart(g groupID) error {
	procs := r.d.Procs()
	if len(procs) < 2 {
		return nil
	}
	var ss []series
	var shown []string
	for _, impl := range r.d.Impls(g) {
		var pts errXY
		for _, p := range procs {
			c := r.d.Cell(r.id(g, impl, "gomaxprocs", p, "sec/op"))
			if c == nil || c.Summary.Center <= 0 {
				continue
			}
			pts = append(pts, cellPoint(c, float64(p), mopsPerSec).positive())
		}
		if len(pts) > 0 {
			ss = append(ss, r.seriesOf(g, impl, pts))
			shown = append(shown, impl)
		}
	}
	if len(ss) == 0 {
		return nil
	}
	title := fmt.Sprintf("%s: throughput vs GOMAXPROCS, one goroutine per P", describeGroup(g))
	from, label := r.oversubscribed()
	c, err := lineChart(title, "GOMAXPROCS (log scale)", "million operations per second (log scale)", ss,
		lineOpts{logX: true, logY: true, xTicks: r.procTicks(), shadeFrom: from, shadeLabel: label})
	if err != nil {
		return err
	}
	r.noteMissing(c, g, shown, "at one goroutine per P")
	for _, impl := range ss {
		if len(impl.points) < len(procs) {
			var at []string
			for _, p := range impl.points {
				at = append(at, strconv.Itoa(int(p.x)))
			}
			c.note("%s: measured only at GOMAXPROCS %s", impl.impl, strings.Join(at, ", "))
		}
	}
	r.noteMarks(c, g, shown)
	return r.embed(c, r.chartName(g, "scaling"), title)
}

// barChart draws time/op at a goroutine count and GOMAXPROCS, sorted.
func (r *report) barChart(g groupID, goroutines string, procs int) error {
	var cells []*Cell
	maxSec := 0.0
	for _, impl := range r.d.Impls(g) {
		if c := r.d.Cell(r.id(g, impl, goroutines, procs, "sec/op")); c != nil {
			cells = append(cells, c)
			maxSec = math.Max(maxSec, c.Summary.Center)
		}
	}
	if len(cells) == 0 {
		return nil
	}
	unit, k := timeUnit(maxSec)
	var bars []bar
	var shown []string
	for _, c := range cells {
		bars = append(bars, r.barOf(g, c.ID.Impl, cellPoint(c, 0, times(k)), fmtTime(c.Summary.Center)))
		shown = append(shown, c.ID.Impl)
	}
	sortBars(bars)
	title := fmt.Sprintf("%s: time per operation, %s goroutines, GOMAXPROCS %d", describeGroup(g), goroutines, procs)
	c, err := hbarChart(title, unit+"/op, all goroutines together (lower is better)", bars, false, math.NaN(), "")
	if err != nil {
		return err
	}
	r.noteMissing(c, g, shown, fmt.Sprintf("at %s goroutines, GOMAXPROCS %d", goroutines, procs))
	r.noteMarks(c, g, shown)
	return r.embed(c, r.chartName(g, "g"+goroutines), title)
}

// goroutineBars charts time/op of every implementation of g at procs,
// grouped by goroutine count.
func (r *report) goroutineBars(g groupID, procs int, title string) (*chart, error) {
	gcs := r.d.GoroutineCounts(g)
	maxSec := 0.0
	for id, c := range r.d.Cells {
		if id.group() == g && id.Procs == procs && id.Unit == "sec/op" {
			maxSec = math.Max(maxSec, c.Summary.Center)
		}
	}
	unit, k := timeUnit(maxSec)
	var ss []series
	var shown []string
	for _, impl := range r.d.Impls(g) {
		var pts errXY
		for i, gs := range gcs {
			if c := r.d.Cell(r.id(g, impl, gs, procs, "sec/op")); c != nil {
				pts = append(pts, cellPoint(c, float64(i), times(k)))
			}
		}
		if len(pts) > 0 {
			ss = append(ss, r.seriesOf(g, impl, pts))
			shown = append(shown, impl)
		}
	}
	c, err := groupedBars(title, "goroutines", unit+"/op, all goroutines together (lower is better)", gcs, ss)
	if err != nil {
		return nil, err
	}
	r.noteMissing(c, g, shown, fmt.Sprintf("at GOMAXPROCS %d", procs))
	r.noteMarks(c, g, shown)
	return c, nil
}

// compactTable writes group g at GOMAXPROCS procs, one row per
// implementation: time/op at each goroutine count, and the comparison with
// the baseline at the most goroutines.
func (r *report) compactTable(g groupID, procs int) {
	baseline := baselineOf(g)
	gcs := r.d.GoroutineCounts(g)
	top := gcs[len(gcs)-1]
	family := r.regFamily(g)
	r.printf("| time/op by goroutines |")
	for _, gs := range gcs {
		r.printf(" %s |", gs)
	}
	r.printf(" vs `%s` at %s | allocs/op |\n|---|%s---|---|\n", baseline, top, strings.Repeat("---|", len(gcs)))
	for _, impl := range r.d.Impls(g) {
		r.printf("| %s |", mdEscape(r.label(family, impl)))
		for _, gs := range gcs {
			c := r.d.Cell(r.id(g, impl, gs, procs, "sec/op"))
			if c == nil {
				r.printf(" – |")
				continue
			}
			r.printf(" %s |", timeWithCI(c))
		}
		vs, allocs := "", ""
		if c := r.d.Cell(r.id(g, impl, top, procs, "sec/op")); c != nil {
			if base := r.d.Cell(r.id(g, baseline, top, procs, "sec/op")); base != nil && impl != baseline {
				vs = r.delta(base, c)
			}
		}
		if a := r.d.Cell(r.id(g, impl, top, procs, "allocs/op")); a != nil {
			allocs = sig3(a.Summary.Center)
		}
		r.printf(" %s | %s |\n", vs, allocs)
	}
	r.printf("\n")
}

// timeWithCI is a time/op median with its CI as ±%, or why there is none.
func timeWithCI(c *Cell) string {
	if !c.HasCI {
		return fmtTime(c.Summary.Center) + ", " + ciString(c)
	}
	return fmtTime(c.Summary.Center) + " ±" + c.Summary.PctRangeString()
}

// table writes group g's table at GOMAXPROCS procs.
func (r *report) table(g groupID, procs int) {
	baseline := baselineOf(g)
	r.printf("| impl | goroutines | time/op | 95%% CI | vs %s | allocs/op |\n|---|---|---|---|---|---|\n", baseline)
	for _, impl := range r.d.Impls(g) {
		first := true
		for _, gs := range r.d.GoroutineCounts(g) {
			c := r.d.Cell(r.id(g, impl, gs, procs, "sec/op"))
			if c == nil {
				continue
			}
			name := ""
			if first {
				name = "`" + impl + "`"
				first = false
			}
			vs := ""
			if base := r.d.Cell(r.id(g, baseline, gs, procs, "sec/op")); base != nil && impl != baseline {
				vs = r.delta(base, c)
			}
			allocs := ""
			if a := r.d.Cell(r.id(g, impl, gs, procs, "allocs/op")); a != nil {
				allocs = sig3(a.Summary.Center)
			}
			r.printf("| %s | %s | %s | %s | %s | %s |\n", name, gs, fmtTime(c.Summary.Center), ciString(c), vs, allocs)
		}
	}
	r.printf("\n")
}

// delta formats c's change against base, benchstat's way.
func (r *report) delta(base, c *Cell) string {
	if !base.HasCI || !c.HasCI {
		return "n/a (fewer than 6 samples)"
	}
	cmp := r.d.Compare(base, c)
	return fmt.Sprintf("%s (p=%.3f n=%d+%d)", cmp.FormatDelta(base.Summary.Center, c.Summary.Center), cmp.P, cmp.N1, cmp.N2)
}

// keyed writes the keyed-limiter section: grouped bars by goroutine count.
func (r *report) keyed(groups []groupID) error {
	for _, g := range groups {
		title := fmt.Sprintf("keyed limiters, %s access over 10,000 keys: time per request, GOMAXPROCS %d", g.Workload, r.mainP)
		c, err := r.goroutineBars(g, r.mainP, title)
		if err != nil {
			return err
		}
		if err := r.embed(c, r.chartName(g, "by-goroutines"), title); err != nil {
			return err
		}
		if err := r.scalingChart(g); err != nil {
			return err
		}
		if base := baselineOf(g); contains(r.d.Impls(g), base) {
			r.printf("`%s` is the baseline here.\n\n", base)
		}
		r.compactTable(g, r.mainP)
	}
	return nil
}

// lockLatency writes the acquire-latency percentiles and fairness of every
// lock, from BenchmarkLockLatency (100 goroutines, RunLock).
func (r *report) lockLatency() error {
	groups := r.d.Groups("LockLatency")
	if len(groups) == 0 {
		return nil
	}
	g := groups[0]
	impls := r.d.Impls(g)
	r.printf("### Acquire latency and fairness, 100 goroutines\n\n")
	r.printf("From `BenchmarkLockLatency`: 100 goroutines acquire, work about 50 ns and release for 50 ms per sample, through `contendtest.RunLock` (whose contexts expire, so the cancellable paths are measured). Latency is from calling `Acquire` to holding the lock, recorded in an HdrHistogram; Jain's fairness index is over the goroutines' acquisition counts (1 = equal shares, 0.01 = one goroutine got everything). GOMAXPROCS %d; medians over the samples.\n\n", r.mainP)
	title := fmt.Sprintf("locks: acquire latency percentiles, 100 goroutines, GOMAXPROCS %d", r.mainP)
	c, err := r.percentileChart(g, "100", r.mainP, title, "Acquire")
	if err != nil {
		return err
	}
	if err := r.embed(c, "lock-latency", title); err != nil {
		return err
	}
	r.printf("| impl | p50 | p99 | p99.9 | Jain fairness | acquisitions/s |\n|---|---|---|---|---|---|\n")
	for _, impl := range impls {
		cellStr := func(unit string, f func(float64) string) string {
			if c := r.d.Cell(r.id(g, impl, "100", r.mainP, unit)); c != nil {
				return f(c.Summary.Center)
			}
			return ""
		}
		r.printf("| `%s` | %s | %s | %s | %s | %s |\n", impl, cellStr("p50-sec", fmtTime), cellStr("p99-sec", fmtTime), cellStr("p999-sec", fmtTime),
			cellStr("jain-fairness", sig3), cellStr("ops/s", fmtCount))
	}
	r.printf("\n")
	return nil
}

// waitLateness writes how late the paced Waits woke against their
// schedule, from BenchmarkWait's late-*-us metrics.
func (r *report) waitLateness() error {
	var g groupID
	for _, gg := range r.d.Groups("Wait") {
		if gg.Workload == "paced" {
			g = gg
		}
	}
	if g.Family == "" {
		return nil
	}
	r.printf("### Pacing accuracy\n\n")
	r.printf("Paced Waits: how late each wake-up came against the schedule a burst-1 limiter keeps (median, 99th percentile and largest lateness over a run, then the median over the samples; GOMAXPROCS %d). Go's timers set most of it; a negative lateness would be a token early.\n\n", r.mainP)
	r.printf("| impl | goroutines | late p50 | late p99 | late max |\n|---|---|---|---|---|\n")
	for _, impl := range r.d.Impls(g) {
		for _, gs := range r.d.GoroutineCounts(g) {
			cell := func(unit string) string {
				if c := r.d.Cell(r.id(g, impl, gs, r.mainP, unit)); c != nil {
					return fmtTime(c.Summary.Center * 1e-6)
				}
				return "–"
			}
			if cell("late-p50-us") == "–" {
				continue
			}
			r.printf("| `%s` | %s | %s | %s | %s |\n", impl, gs, cell("late-p50-us"), cell("late-p99-us"), cell("late-max-us"))
		}
	}
	r.printf("\n")
	return nil
}
