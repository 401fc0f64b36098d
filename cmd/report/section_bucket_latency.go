package main

import (
	"fmt"
	"math"
)

// timerFloor is BenchmarkBucketLatency's floor: a TryTake that returns at
// once, timed like the buckets.
const timerFloor = "timer-floor"

// bucketLatency writes the TryTake latency percentiles of every bucket,
// from BenchmarkBucketLatency (near-limit workload, real clock, 100
// goroutines), after the bucket family's groups.
func (r *report) bucketLatency() error {
	groups := r.d.Groups("BucketLatency")
	if len(groups) == 0 {
		return nil
	}
	g := groups[0]
	r.printf("### TryTake latency, %s, %s clock, 100 goroutines\n\n", g.Workload, g.Clock)
	r.printf("From `BenchmarkBucketLatency`: the near-limit workload on the real clock, with 100 goroutines. One call in 8 is timed between two reads of the runtime's monotonic clock and recorded in an HdrHistogram (2 significant digits); the other calls keep the load as in the throughput benchmark. Every figure includes the timer: `%s` is a `TryTake` that returns at once, timed the same way under the same load, so its percentiles are what the timer alone reads (the reads are not subtracted: percentiles do not subtract). A call descheduled between its two reads (preempted, or parked on a mutex and waiting for a P) counts with the wait, as a caller would see it. GOMAXPROCS %d; medians over the samples.\n\n", timerFloor, r.mainP)
	title := fmt.Sprintf("buckets: TryTake latency percentiles, near-limit, real clock, 100 goroutines, GOMAXPROCS %d", r.mainP)
	c, err := r.percentileChart(g, "100", r.mainP, title, "TryTake")
	if err != nil {
		return err
	}
	if r.d.Cell(r.id(g, timerFloor, "100", r.mainP, "p50-sec")) != nil {
		c.note("%s: %s", timerFloor, benchOnly[timerFloor])
	}
	if err := r.embed(c, "bucket-latency", title); err != nil {
		return err
	}
	r.printf("| impl | p50 | p99 | p99.9 | grant ratio |\n|---|---|---|---|---|\n")
	for _, impl := range r.d.Impls(g) {
		get := func(unit string, f func(float64) string) string {
			if c := r.d.Cell(r.id(g, impl, "100", r.mainP, unit)); c != nil {
				return f(c.Summary.Center)
			}
			return ""
		}
		r.printf("| %s | %s | %s | %s | %s |\n", mdEscape(r.label("bucket", impl)), get("p50-sec", fmtTime), get("p99-sec", fmtTime), get("p999-sec", fmtTime), get("grant-ratio", sig3))
	}
	r.printf("\n")
	r.tailSpread(g)
	return nil
}

// tailSpread says, from the table's data, how far apart the buckets'
// p99.9 are, next to the timer's.
func (r *report) tailSpread(g groupID) {
	var lo, hi *Cell
	for _, impl := range r.d.Impls(g) {
		c := r.d.Cell(r.id(g, impl, "100", r.mainP, "p999-sec"))
		if c == nil || impl == timerFloor {
			continue
		}
		if lo == nil || c.Summary.Center < lo.Summary.Center {
			lo = c
		}
		if hi == nil || c.Summary.Center > hi.Summary.Center {
			hi = c
		}
	}
	if lo == nil {
		return
	}
	r.printf("At p99.9 the buckets range from %s (`%s`) to %s (`%s`)", fmtTime(lo.Summary.Center), lo.ID.Impl, fmtTime(hi.Summary.Center), hi.ID.Impl)
	if f := r.d.Cell(r.id(g, timerFloor, "100", r.mainP, "p999-sec")); f != nil {
		r.printf("; the timer alone reads %s", fmtTime(f.Summary.Center))
	}
	r.printf(".")
	var parked []string
	for _, impl := range r.d.Impls(g) {
		p50 := r.d.Cell(r.id(g, impl, "100", r.mainP, "p50-sec"))
		p999 := r.d.Cell(r.id(g, impl, "100", r.mainP, "p999-sec"))
		if impl != timerFloor && p50 != nil && p999 != nil && p999.Summary.Center >= tailJump*math.Max(p50.Summary.Center, 1e-9) {
			parked = append(parked, "`"+impl+"`")
		}
	}
	if len(parked) > 0 {
		r.printf(" For %s the p99.9 is %g times the p50 or more: the slowest call in a thousand waited (for a mutex hand-off, a P or the GC) rather than worked.", joinAnd(parked), float64(tailJump))
	}
	r.printf("\n\n")
}

// tailJump is the p99.9/p50 ratio from which the report says that the tail
// is a wait rather than the call's own work.
const tailJump = 100

// joinAnd joins names as "a, b and c".
func joinAnd(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	out := names[0]
	for _, n := range names[1 : len(names)-1] {
		out += ", " + n
	}
	return out + " and " + names[len(names)-1]
}
