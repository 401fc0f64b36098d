package harness

import (
	"cmp"
	"context"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/contend-lab/contend"
)

// BenchmarkWait measures the blocking path, one Wait for one token per
// operation, on the lab's Limiters and on the two libraries users would
// otherwise pick:
//
//	BenchmarkWait/workload=<unblocked|paced>/impl=<name>/goroutines=<1|gomaxprocs|100>
//
// impl: every registered exact bucket that is a contend.Limiter (its
// Wait), xrate-wait (golang.org/x/time/rate Limiter.Wait) and uber-take
// (go.uber.org/ratelimit Limiter.Take, which cannot be cancelled). All run
// on the real clock.
//
//   - unblocked: a rate that never makes anyone wait (a burst of 2^62 at
//     1e9 tokens/s; x/time/rate the same; uber at one per ns). ns/op is the
//     cost of the synchronisation around a Wait that does not sleep.
//   - paced: a burst of 1 at waitPacedRate, which the goroutines together
//     ask for as fast as they are let through. The custom metrics are how
//     late the wake-ups are against the schedule a burst-1 limiter keeps
//     (waitSchedule): late-p50-us, late-p99-us and late-max-us are the
//     median, 99th percentile and largest of (return - due), in
//     microseconds; negative would mean early. ns/op is 1/rate when the
//     goroutines keep a queue (100 do), more when each sleeper wakes late
//     and finds nobody booked behind it (a burst of 1 forfeits the time).
//     Each run makes waitPacedOps Waits whatever b.N: run it with
//     -benchtime 1x.
//
// paced runs the lab's atomic and mutex only: every lab Limiter's Wait is
// the same code (internal/bucketcore) over its own lock, and the pacing is
// the runtime timers'.
func BenchmarkWait(b *testing.B) {
	for _, w := range []string{"unblocked", "paced"} {
		b.Run("workload="+w, func(b *testing.B) {
			for _, impl := range waitImpls() {
				if w == "paced" && !waitPacedImpls[impl.name] {
					continue
				}
				b.Run("impl="+impl.name, func(b *testing.B) {
					for _, g := range benchGoroutines() {
						// paced runs at -benchtime 1x: set the first -cpu
						// value's GOMAXPROCS before b.Run's probe, which is
						// kept as its first sample.
						runFirstCPU(b, goroutinesName(g), func(b *testing.B) {
							benchWait(b, impl, w == "paced", resolveGoroutines(g))
						})
					}
				})
			}
		})
	}
}

// waitPacedImpls are the implementations the paced workload runs.
var waitPacedImpls = map[string]bool{"atomic": true, "mutex": true, "xrate-wait": true, "uber-take": true}

// waitPacedRate is the paced workload's rate: a wake-up every 100 µs,
// coarse enough for the runtime's timers, fine enough that a run of a
// second holds 10,000 of them.
const waitPacedRate = 1e4

// waitImpl is one implementation's blocking call for one token.
type waitImpl struct {
	name string
	// new returns the call for a limiter that paces at waitPacedRate with
	// a burst of 1, or never blocks.
	new func(paced bool) (func(ctx context.Context) error, error)
}

// waitImpls returns the lab's exact Limiters, by registry name, then the
// references.
func waitImpls() []waitImpl {
	var out []waitImpl
	for _, impl := range Buckets() {
		if impl.Guarantee != Exact || impl.Reference {
			continue
		}
		out = append(out, waitImpl{impl.Name, func(paced bool) (func(context.Context) error, error) {
			cfg := contend.BucketConfig{Capacity: contend.MaxCapacity, Rate: contend.MaxRate}
			if paced {
				cfg = contend.BucketConfig{Capacity: 1, Rate: waitPacedRate}
			}
			bucket, err := impl.New(cfg)
			if err != nil {
				return nil, err
			}
			l, ok := bucket.(contend.Limiter)
			if !ok {
				return nil, nil // not a Limiter: skipped
			}
			return func(ctx context.Context) error { return l.Wait(ctx, 1) }, nil
		}})
	}
	return append(out,
		waitImpl{"xrate-wait", func(paced bool) (func(context.Context) error, error) {
			l := rate.NewLimiter(rate.Limit(contend.MaxRate), math.MaxInt)
			if paced {
				l = rate.NewLimiter(waitPacedRate, 1)
			}
			return l.Wait, nil
		}},
		waitImpl{"uber-take", func(paced bool) (func(context.Context) error, error) {
			l := ratelimit.New(int(contend.MaxRate))
			if paced {
				l = ratelimit.New(waitPacedRate, ratelimit.WithoutSlack)
			}
			return func(context.Context) error { l.Take(); return nil }, nil
		}},
	)
}

func benchWait(b *testing.B, impl waitImpl, paced bool, g int) {
	wait, err := impl.new(paced)
	if err != nil {
		b.Fatalf("%s: %v", impl.name, err)
	}
	if wait == nil {
		b.Skipf("%s is not a contend.Limiter", impl.name)
	}
	ctx := context.Background()
	if !paced {
		b.ReportAllocs()
		runParallel(b, g, func(_, n int) int64 {
			var failed int64
			for range n {
				if wait(ctx) != nil {
					failed++
				}
			}
			return failed
		})
		return
	}
	benchPaced(b, wait, g)
}

// waitPacedOps is how many Waits one paced run makes, whatever b.N (run
// it with -benchtime 1x and -count for samples): 0.2 s at waitPacedRate
// when the goroutines keep a queue, about a second when one goroutine
// wakes late each time. ns/op, B/op and allocs/op are per Wait.
const waitPacedOps = 2000

// benchPaced makes waitPacedOps Waits on g goroutines, each recording when
// it called and when it returned, and reports lateness (see BenchmarkWait).
func benchPaced(b *testing.B, wait func(context.Context) error, g int) {
	b.StopTimer()
	ctx := context.Background()
	base := time.Now()
	calls := make([][]waitCall, g)
	for id := range calls {
		calls[id] = make([]waitCall, 0, waitPacedOps/g+1)
	}
	var failed atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for id := range g {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-start
			for i := id; i < waitPacedOps; i += g {
				call := int64(time.Since(base))
				if wait(ctx) != nil {
					failed.Add(1)
				}
				calls[id] = append(calls[id], waitCall{call, int64(time.Since(base))})
			}
		})
	}
	ready.Wait()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	b.StartTimer()
	close(start)
	done.Wait()
	b.StopTimer()
	runtime.ReadMemStats(&after)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d Waits failed", n)
	}
	p50, p99, most := lateness(slices.Concat(calls...), int64(time.Second/waitPacedRate))
	b.ReportMetric(p50/1e3, "late-p50-us")
	b.ReportMetric(p99/1e3, "late-p99-us")
	b.ReportMetric(most/1e3, "late-max-us")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/waitPacedOps, "ns/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/waitPacedOps, "B/op")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/waitPacedOps, "allocs/op")
}

// waitCall is when one Wait was called and returned, in ns.
type waitCall struct{ call, ret int64 }

// lateness returns the median, 99th percentile and largest of ret - due
// over calls, with due from waitSchedule.
func lateness(calls []waitCall, interval int64) (p50, p99, most float64) {
	late := make([]float64, len(calls))
	for i, due := range waitSchedule(calls, interval) {
		late[i] = float64(calls[i].ret - due)
	}
	slices.Sort(late)
	q := func(p float64) float64 { return late[min(len(late)-1, int(p*float64(len(late))))] }
	return q(0.5), q(0.99), late[len(late)-1]
}

// waitSchedule sorts calls by the time they were made and returns when
// each was due on a burst-1 limiter that books them in that order, one per
// interval: the first when it was called, each next one when it was called
// or one interval after the one before, whichever is later. That is what
// all three kinds of limiter compute when they book; the call's timestamp
// stands for the booking's reading (taken within nanoseconds of it, unless
// the goroutine is descheduled in between, which can swap two neighbours).
func waitSchedule(calls []waitCall, interval int64) []int64 {
	slices.SortFunc(calls, func(a, b waitCall) int { return cmp.Compare(a.call, b.call) })
	due := make([]int64, len(calls))
	for i, c := range calls {
		due[i] = c.call
		if i > 0 {
			due[i] = max(c.call, due[i-1]+interval)
		}
	}
	return due
}

// The paced workload's units, printed by TestMain with the others.
func init() {
	benchUnits = append(benchUnits,
		"Unit late-p50-us better=lower",
		"Unit late-p99-us better=lower",
		"Unit late-max-us better=lower",
	)
}
