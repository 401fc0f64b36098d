// Package reference adapts the libraries a Go programmer would otherwise
// pick to the lab's contracts, so that the harness can test and benchmark
// them beside the lab's own strategies, as the bar to beat:
//
//   - XsyncCounter: github.com/puzpuzpuz/xsync/v3's striped Counter.
//   - TimeRateBucket: golang.org/x/time/rate's Limiter, driven by the
//     bucket's injected clock.
//
// The adapters add no synchronisation of their own; what they guarantee is
// what the libraries guarantee, which their documentation states, including
// where that falls short of the lab's contracts.
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
