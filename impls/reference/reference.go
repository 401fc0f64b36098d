// Package reference adapts the libraries a Go programmer would otherwise
// pick to the lab's contracts, so that the harness can test and benchmark
// them beside the lab's own strategies, as the bar to beat:
//
//   - XsyncCounter: github.com/puzpuzpuz/xsync/v3's striped Counter.
//   - TimeRateBucket: golang.org/x/time/rate's Limiter, driven by the
//     bucket's injected clock.
//   - WeightedSemaphore: golang.org/x/sync/semaphore's Weighted.
//
// The adapters add no synchronisation of their own; what they guarantee is
// what the libraries guarantee, which their documentation states, including
// where that falls short of the lab's contracts.
//
// # Where x/time/rate falls short
//
// The Limiter is a mutex around float64 state (tokens, and the time.Time of
// the last update). Its calls are linearizable, but its arithmetic is not
// the lab's. Each deviation below is measured by a test named
// TestTimeRate_<Finding> in this package:
//
//   - EarlyByUnderOneNanosecond: AllowN grants when the tokens fall short by
//     less than one nanosecond's worth (durationFromTokens truncates the wait
//     to whole nanoseconds, and a zero wait is a grant), leaving the tokens
//     negative. At rates near 1e9/s this is up to one token early, beyond
//     Capacity + Rate × elapsed.
//   - EarlyAtLargeElapsed: elapsed time is converted with Duration.Seconds
//     to a float64, which at large elapsed times rounds a reading 1 ns before
//     a token is due up to it: tokens come early.
//   - HugeBurstNeverRunsDown: tokens are a float64, so with burst >= 2^54 a
//     request for 1 subtracts nothing, and at a frozen clock AllowN(t, 1)
//     grants without end.
//   - RequestRoundedToFloat: n is subtracted as float64(n): above 2^53 a
//     request costs float64(n), up to 2^-54 relative less than n.
//   - BackwardsThenForwardDoubleCounts: a reading before the last one is
//     treated as no time passing, but a grant then stores it as the last
//     time, so when the clock returns the same interval is earned again.
//     (The lab's Clock contract forbids readings going back; ManualClock and
//     MonotonicClock never do.)
//   - PartialTokenDiscardedWhenFull, which is not a deviation: a full
//     limiter forgets the progress towards the next token, as the textbook
//     bucket and the lab's buckets do.
//
// # Where x/sync's Weighted falls short
//
// Weighted has no fencing token, and grants permits inside its own mutex (a
// waiter's, inside the Release that serves it), where the adapter cannot
// draw one. The adapter's Token is a count of acquisitions drawn after
// Weighted returns: unique, and greater than the token of every lease whose
// Acquire returned before this one was called, but a lease whose permits
// were taken later (a TryAcquire between a waiter's grant and its wake-up)
// can carry the smaller one. harness.SemaphoreImpl.NoFencing says so, and
// the linearizability check reads its tokens as names only.
//
// Weighted itself blocks an Acquire of more than its size until ctx is
// done, where the contract wants a *contend.PermitError at once: the
// adapter checks n against Capacity first.
package reference

import (
	"github.com/puzpuzpuz/xsync/v3"
)

// XsyncCounter is a contend.Counter on github.com/puzpuzpuz/xsync/v3's
// Counter: an array of cache-line-padded int64 stripes (the next power of
// two of min(GOMAXPROCS, NumCPU) at construction). Add picks a stripe from a
// sync.Pool of per-P tokens and CASes it, moving to a random stripe when the
// CAS fails; Load (xsync's Value) sums the stripes with atomic loads.
//
// Guarantees: no update is ever lost, so once every Add has returned, Load
// is exact. While Adds run, Load is not linearizable: it reads the stripes
// one after another, so it may count an Add that finished after another it
// misses, and return a sum the counter never held at any instant.
//
// Cost: Add is a pool Get/Put and one uncontended CAS (contention is spread
// over the stripes); Load reads every stripe, 64 bytes each.
type XsyncCounter struct {
	c *xsync.Counter
}

// NewXsyncCounter returns a zero XsyncCounter.
func NewXsyncCounter() *XsyncCounter { return &XsyncCounter{c: xsync.NewCounter()} }

// Add adds delta to the counter.
func (c *XsyncCounter) Add(delta int64) { c.c.Add(delta) }

// Load returns the sum of the stripes; see XsyncCounter for what it
// guarantees while Adds run.
func (c *XsyncCounter) Load() int64 { return c.c.Value() }
