package contendtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/contend-lab/contend"
)

// Work does n rounds of xorshift64 (three shifts and three xors, one
// dependent chain) on x and returns the result. It is the lab's stand-in
// for a critical section's work: pure arithmetic on a register, which the
// compiler cannot remove as long as the result is used, and which touches
// no shared memory, so it costs the same whatever the lock: a few
// nanoseconds a round (harness's BenchmarkLock, workload "work",
// measures WorkRounds of them under a lock).
func Work(x uint64, n int) uint64 {
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// WorkRounds is the number of Work rounds in the lab's "work" critical
// section: some tens of nanoseconds of arithmetic.
const WorkRounds = 25

// workSink keeps the critical sections' results alive.
var workSink atomic.Uint64

// Latency histograms record waits in ns, from 1 ns to a minute (longer
// waits are recorded as a minute), to 2 significant digits: 1%
// resolution in about 30 KB per histogram.
const (
	latencyMax     = int64(time.Minute)
	latencySigFigs = 2
)

// NewLatencyHistogram returns an empty histogram of the kind
// LockRun.Latency is: waits in ns from 1 ns to a minute, to 1%.
func NewLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, latencyMax, latencySigFigs)
}

// RecordLatency records d in h, a histogram from NewLatencyHistogram,
// clamped to its range.
func RecordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(int64(d), 1), latencyMax)) // in range: cannot fail
}

// LockRun is the outcome of RunLock.
type LockRun struct {
	Goroutines int
	Elapsed    time.Duration // from the start barrier until the last goroutine returned
	// Acquisitions counts the leases granted and released.
	Acquisitions int64
	// Overlaps counts critical sections entered while another goroutine
	// was inside one. A correct lock has none.
	Overlaps int64
	// TokenRegressions counts leases whose token was not greater than the
	// largest token seen by an earlier critical section. A correct lock has
	// none.
	TokenRegressions int64
	// PerGoroutine[g] counts goroutine g's acquisitions.
	PerGoroutine []int64
	// Latency is the distribution of the time each successful Acquire call
	// took, in ns (see JainFairness and P for summaries).
	Latency *hdrhistogram.Histogram
	// MaxWait is the longest successful Acquire.
	MaxWait time.Duration
}

// JainFairness returns Jain's fairness index over PerGoroutine:
// (Σx)² / (n·Σx²). It is 1 when every goroutine acquired equally often and
// 1/n when one goroutine got every acquisition; 0 when there were none.
func (r LockRun) JainFairness() float64 { return JainFairness(r.PerGoroutine) }

// P returns the q-quantile (0 < q <= 1; P(0.99) is p99) of the successful
// Acquire latencies, to the histogram's 1% resolution; 0 with none.
func (r LockRun) P(q float64) time.Duration { return Quantile(r.Latency, q) }

// SemaphoreRun is the outcome of RunSemaphore.
type SemaphoreRun struct {
	Goroutines   int
	Capacity     int64
	Elapsed      time.Duration
	Acquisitions int64
	// MaxHeld is the most permits held at once, as counted by the holders
	// themselves on entering their critical sections. A correct semaphore
	// never exceeds Capacity.
	MaxHeld int64
	// Overflows counts critical sections entered with more than Capacity
	// permits held (their own included). A correct semaphore has none.
	Overflows    int64
	PerGoroutine []int64
	Latency      *hdrhistogram.Histogram // successful Acquire calls, in ns
	MaxWait      time.Duration
}

// JainFairness returns Jain's fairness index over PerGoroutine; see
// LockRun.JainFairness.
func (r SemaphoreRun) JainFairness() float64 { return JainFairness(r.PerGoroutine) }

// P returns the q-quantile of the successful Acquire latencies; see
// LockRun.P.
func (r SemaphoreRun) P(q float64) time.Duration { return Quantile(r.Latency, q) }

// RunLock starts goroutines that each loop, until d has passed: Acquire l,
// run a critical section, Release. The goroutines start together from a
// barrier. Acquire is called with a context that expires when d has passed,
// as a server's request context would, so every implementation is measured
// on its cancellable waiting path, and waiters still blocked at the end are
// cancelled (which exercises the implementations' cancellation under
// contention: the caller should check afterwards that the lock is free).
//
// The critical section increments an atomic count of holders and records
// an overlap if it was already positive, records a token regression unless
// the lease's token is greater than the largest token seen so far (an
// atomic maximum), does work rounds of Work, and decrements the count.
// Each successful Acquire's duration goes into the latency histogram.
//
// Release is called with a context that ends ReleasePatience after d has
// passed (one context for the whole run: nothing is allocated per call),
// so a Release that never returns fails the run instead of hanging it.
//
// It returns an error for bad arguments, for an Acquire that fails other
// than by its expired context, and for a failed Release; the run's counts
// up to that point come with it. A lock that never grants anything leaves
// every goroutine blocked until d has passed, and returns no error: check
// Acquisitions.
func RunLock(l contend.Lock, goroutines int, d time.Duration, work int) (LockRun, error) {
	if goroutines < 1 || d <= 0 || work < 0 {
		return LockRun{}, fmt.Errorf("RunLock: want goroutines >= 1, d > 0 and work >= 0; got %d, %v, %d", goroutines, d, work)
	}
	var holders atomic.Int64
	var overlaps, regressions atomic.Int64
	var lastToken atomic.Uint64
	c, err := runContenders(goroutines, d,
		func(ctx context.Context, _ int) (contend.Lease, error) { return l.Acquire(ctx) },
		func(_ int, lease contend.Lease, acc uint64) uint64 {
			if holders.Add(1) != 1 {
				overlaps.Add(1)
			}
			tok := lease.Token()
			for {
				last := lastToken.Load()
				if tok <= last {
					regressions.Add(1)
					break
				}
				if lastToken.CompareAndSwap(last, tok) {
					break
				}
			}
			acc = Work(acc^tok, work)
			holders.Add(-1)
			return acc
		})
	return LockRun{
		Goroutines:       goroutines,
		Elapsed:          c.elapsed,
		Acquisitions:     c.acquisitions,
		Overlaps:         overlaps.Load(),
		TokenRegressions: regressions.Load(),
		PerGoroutine:     c.perGoroutine,
		Latency:          c.latency,
		MaxWait:          c.maxWait,
	}, err
}

// RunSemaphore is RunLock for a semaphore: goroutine g loops, until d has
// passed, taking permits(g) permits, running a critical section and
// releasing them. The critical section adds its permits to an atomic count
// of permits held, records the largest count seen (MaxHeld) and an
// overflow if the count exceeds Capacity, does WorkRounds rounds of Work,
// yields its P once (runtime.Gosched), and subtracts its permits. The yield
// is there so that the check does not depend on the scheduler: Capacity + 1
// holders can only be counted at once if that many are inside their
// critical sections together, which, with fewer Ps than that, happens only
// when holders are descheduled inside. Yielding lets every goroutine the
// semaphore admits come in, so an over-admitting semaphore is caught even at
// GOMAXPROCS 1. Acquire's context expires when d has passed,
// as in RunLock. permits(g) outside [1, Capacity] makes Acquire fail, and
// the run returns that error.
func RunSemaphore(s contend.Semaphore, goroutines int, d time.Duration, permits func(g int) int64) (SemaphoreRun, error) {
	if goroutines < 1 || d <= 0 || permits == nil {
		return SemaphoreRun{}, fmt.Errorf("RunSemaphore: want goroutines >= 1, d > 0 and a permits function; got %d, %v", goroutines, d)
	}
	capacity := s.Capacity()
	var held, maxHeld, overflows atomic.Int64
	c, err := runContenders(goroutines, d,
		func(ctx context.Context, g int) (contend.Lease, error) { return s.Acquire(ctx, permits(g)) },
		func(g int, lease contend.Lease, acc uint64) uint64 {
			n := permits(g)
			now := held.Add(n)
			if now > capacity {
				overflows.Add(1)
			}
			for {
				m := maxHeld.Load()
				if now <= m || maxHeld.CompareAndSwap(m, now) {
					break
				}
			}
			acc = Work(acc^lease.Token(), WorkRounds)
			runtime.Gosched()
			held.Add(-n)
			return acc
		})
	return SemaphoreRun{
		Goroutines:   goroutines,
		Capacity:     capacity,
		Elapsed:      c.elapsed,
		Acquisitions: c.acquisitions,
		MaxHeld:      maxHeld.Load(),
		Overflows:    overflows.Load(),
		PerGoroutine: c.perGoroutine,
		Latency:      c.latency,
		MaxWait:      c.maxWait,
	}, err
}

// contention is what runContenders measures.
type contention struct {
	elapsed      time.Duration
	acquisitions int64
	perGoroutine []int64
	latency      *hdrhistogram.Histogram
	maxWait      time.Duration
}

// runContenders runs the loop RunLock and RunSemaphore share: each of
// goroutines goroutines, released together, acquires with a context that
// expires after d, calls hold with the lease, and releases, until the
// context is done or an error occurs. The first error is returned.
func runContenders(goroutines int, d time.Duration,
	acquire func(ctx context.Context, g int) (contend.Lease, error),
	hold func(g int, lease contend.Lease, acc uint64) uint64,
) (contention, error) {
	var (
		ctx      context.Context
		cancel   context.CancelFunc
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	per := make([]int64, goroutines)
	hists := make([]*hdrhistogram.Histogram, goroutines)
	maxWaits := make([]time.Duration, goroutines)
	start := make(chan struct{})
	releaseCtx, releaseCancel := context.WithTimeout(context.Background(), d+ReleasePatience)
	defer releaseCancel()
	wg.Add(goroutines)
	for g := range goroutines {
		hists[g] = NewLatencyHistogram()
		go func() {
			defer wg.Done()
			<-start
			hist := hists[g]
			acc := uint64(g) + 1
			for ctx.Err() == nil {
				t0 := time.Now()
				lease, err := acquire(ctx, g)
				wait := time.Since(t0)
				if err != nil {
					if cerr := ctx.Err(); cerr == nil || !errors.Is(err, cerr) {
						fail(fmt.Errorf("goroutine %d: Acquire: %w", g, err))
					}
					break
				}
				acc = hold(g, lease, acc)
				if err := lease.Release(releaseCtx); err != nil {
					fail(fmt.Errorf("goroutine %d: Release: %w", g, releasing(releaseCtx, err)))
					break
				}
				per[g]++
				RecordLatency(hist, wait)
				maxWaits[g] = max(maxWaits[g], wait)
			}
			workSink.Add(acc)
		}()
	}
	ctx, cancel = context.WithTimeout(context.Background(), d)
	defer cancel()
	t0 := time.Now()
	close(start)
	wg.Wait()
	c := contention{elapsed: time.Since(t0), perGoroutine: per, latency: NewLatencyHistogram()}
	for g := range goroutines {
		c.acquisitions += per[g]
		c.latency.Merge(hists[g])
		c.maxWait = max(c.maxWait, maxWaits[g])
	}
	return c, firstErr
}

// ReleasePatience is how long after a run's end (RunLock and RunSemaphore's
// d, or a recorded history's bound) its Releases may still take: a Release
// still blocked then has its context end, and fails the run.
const ReleasePatience = 10 * time.Second

// releasing says, of a Release's error, when it came from the run's own
// bound: the Release did not return in time.
func releasing(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("did not return within %v of the run's end: %w", ReleasePatience, err)
	}
	return err
}

// JainFairness returns Jain's fairness index of counts: (Σx)² / (n·Σx²).
// It is 1 when every count is the same, 1/n when one has them all, and 0
// when all are 0.
func JainFairness(counts []int64) float64 {
	var sum, squares float64
	for _, x := range counts {
		sum += float64(x)
		squares += float64(x) * float64(x)
	}
	if squares == 0 {
		return 0
	}
	return sum * sum / (float64(len(counts)) * squares)
}

// Quantile returns h's q-quantile (0 < q <= 1; 0.99 is p99) as a
// duration, to the histogram's resolution; 0 for a nil or empty one.
func Quantile(h *hdrhistogram.Histogram, q float64) time.Duration {
	if h == nil || h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.ValueAtQuantile(100 * q))
}
