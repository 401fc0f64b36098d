package harness

// BenchmarkBucketLatency/workload=near-limit/clock=real/impl=<name>/goroutines=100
//
// The latency of single TryTake(1) calls, as BenchmarkLockLatency gives
// the locks': every registered bucket, xrate-allow (x/time/rate as most
// code calls it) and timer-floor (below), under BenchmarkBucket's
// near-limit workload on the real clock (Capacity nearLimitCapacity at
// nearLimitRate: demand above the rate, grants and denials mixed) with
// 100 goroutines started by runParallel, which split b.N calls among them.
// Run it for a time (scripts/bench.sh: -benchtime 20ms).
//
// Timing: one call in latencySample is timed, between two reads of the
// runtime's monotonic clock (runtime.nanotime, the cheapest monotonic read,
// which the floor benchmark measures), and recorded in the goroutine's own
// HdrHistogram (1 ns to a minute, 2 significant digits); the histograms are
// merged after the run. A clock read costs about as much as a TryTake
// here, so the untimed calls keep the load near what BenchmarkBucket
// applies; the timed interval still contains part of both reads. That is
// not subtracted (percentiles do not subtract): impl=timer-floor times a
// TryTake that returns at once, under the same load, so its percentiles
// are what the timer alone reads. A timed call that is descheduled between
// its two reads (preemption, GC) is recorded with the wait: that is part of
// the tail a caller sees.
//
// Metrics: p50-ns, p99-ns, p999-ns of the timed calls; grant-ratio
// (granted / requested over all calls, to show the workload's mix); ns/op
// is wall time per call of all goroutines together, as in BenchmarkBucket.
// The racy control is skipped under -race.

import (
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/raceflag"
)

// latencySample: BenchmarkBucketLatency times one call in latencySample (a
// power of two, so the test is a mask).
const latencySample = 8

// timerFloorImpl is BenchmarkBucketLatency's floor: a Bucket whose TryTake
// denies at once, so its timed calls measure the timer and the call alone.
var timerFloorImpl = BucketImpl{
	Name: "timer-floor",
	New:  func(contend.BucketConfig) (contend.Bucket, error) { return denyAll{}, nil },
}

// denyAll is a Bucket that grants nothing and does nothing.
type denyAll struct{}

func (denyAll) TryTake(int64) bool { return false }

// BenchmarkBucketLatency reports TryTake latency percentiles under the
// near-limit workload with 100 goroutines; see the top of the file.
func BenchmarkBucketLatency(b *testing.B) {
	var nearLimit bucketWorkload
	for _, w := range bucketWorkloads {
		if w.name == "near-limit" {
			nearLimit = w
		}
	}
	impls := append(Buckets(), xrateAllowImpl, timerFloorImpl)
	for _, impl := range impls {
		if impl.Guarantee == Racy && raceflag.Enabled {
			continue
		}
		b.Run("workload=near-limit/clock=real/impl="+impl.Name+"/"+goroutinesName(contendtest.StressGoroutines), func(b *testing.B) {
			b.ReportAllocs()
			bucket, err := impl.New(nearLimit.config(contend.DefaultClock, false, b.N))
			if err != nil {
				b.Fatalf("%s: %v", impl.Name, err)
			}
			hists := make([]*hdrhistogram.Histogram, contendtest.StressGoroutines)
			for id := range hists {
				hists[id] = contendtest.NewLatencyHistogram()
			}
			granted := runParallel(b, contendtest.StressGoroutines, func(id, n int) int64 { return timedTakes(bucket, hists[id], n) })
			total := contendtest.NewLatencyHistogram()
			for _, h := range hists {
				total.Merge(h)
			}
			b.ReportMetric(float64(contendtest.Quantile(total, 0.50).Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(contendtest.Quantile(total, 0.99).Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(contendtest.Quantile(total, 0.999).Nanoseconds()), "p999-ns")
			b.ReportMetric(float64(granted)/float64(b.N), "grant-ratio")
		})
	}
}

// timedTakes calls TryTake(1) n times, records the duration of one call in
// latencySample into h, and returns the number granted.
func timedTakes(bucket contend.Bucket, h *hdrhistogram.Histogram, n int) int64 {
	var granted int64
	for i := range n {
		if i&(latencySample-1) != 0 {
			if bucket.TryTake(1) {
				granted++
			}
			continue
		}
		t0 := nanotime()
		ok := bucket.TryTake(1)
		d := nanotime() - t0
		contendtest.RecordLatency(h, time.Duration(d))
		if ok {
			granted++
		}
	}
	return granted
}
