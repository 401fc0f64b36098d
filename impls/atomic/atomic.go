// Package atomic synchronises with single-word atomic instructions and no
// locks: the counter is one atomic.Int64, and the bucket is one 64-bit word
// updated by compare-and-swap.
package atomic

import (
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a contend.Counter on one atomic.Int64 (a LOCK XADD on amd64).
// Add and Load are linearizable and wait-free. Cost: about 5 ns uncontended;
// under contention every Add moves the same cache line between cores, which
// is what the sharded counter in package pershard avoids.
type Counter struct {
	n atomic.Int64
}

// NewCounter returns a zero Counter.
func NewCounter() *Counter { return new(Counter) }

// Add adds delta to the counter.
func (c *Counter) Add(delta int64) { c.n.Add(delta) }

// Load returns the counter's value.
func (c *Counter) Load() int64 { return c.n.Load() }

// Bucket is a lock-free contend.Bucket: GCRA counted in tokens (see package
// refill), with its whole state in one uint64, the number of tokens consumed
// since construction.
//
// Guarantees:
//   - Linearizable and exact: a request is decided and recorded by one
//     compare-and-swap on the state word, so no two requests can spend the
//     same token, and it never grants more than Capacity + Rate × elapsed.
//   - A denied request writes nothing: it loads the word and returns.
//   - It never fails open. The state only grows and holds no time, so a
//     clock reading that goes backwards (or a stalled goroutine deciding on
//     an old reading) can only delay tokens, never add them.
//   - Range: every representable configuration (package refill) works for
//     MaxElapsed (about 292 years) after construction without overflow;
//     past that the bucket stops earning tokens and denies.
//
// Cost: one clock read, one 128-by-64-bit division (the tokens earned by
// now, computed before the word is read), one atomic load, a few
// comparisons and one CAS per grant. Under contention, a CAS that loses
// retries with a fresh load and the same reading, and no division.
type Bucket struct {
	consumed atomic.Uint64
	p        bucketcore.Params
}

// NewBucket returns a full Bucket, or a *contend.ConfigError.
func NewBucket(cfg contend.BucketConfig) (*Bucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Bucket{p: p}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *Bucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	// The division happens once, before the word is read: between the load
	// and the CAS there are only comparisons, so the window in which
	// another core's CAS can make ours fail is as short as it can be.
	earned := b.p.Sched.Earned(b.p.Elapsed())
	for {
		g := b.consumed.Load()
		next, ok := b.p.Sched.TakeEarned(g, earned, uint64(n), b.p.Capacity)
		if !ok {
			return false
		}
		if b.consumed.CompareAndSwap(g, next) {
			return true
		}
	}
}
