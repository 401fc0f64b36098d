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

// Bucket is a lock-free contend.Bucket: GCRA (see package refill) with its
// whole state in one uint64, the bucket's theoretical arrival time.
//
// Guarantees:
//   - Exact and linearizable: each decision is the textbook token bucket's,
//     at a reading taken within its call. A denial is decided on a reading
//     taken after the state it refuses on was loaded, so a token that was
//     there throughout the call is never refused; a grant decided on an
//     older reading than the state's is the textbook bucket's at the later
//     time too. Over any window of W it grants at most Capacity + Rate × W.
//   - A denial writes nothing. It may deny a request that the textbook
//     bucket grants only within refill.Tolerance of the boundary.
//   - Never fails open: a stale or backwards reading can only delay tokens.
//   - Range: every valid configuration works for at least 146 years
//     (refill.Limit.MaxElapsed); past that the bucket stops earning.
//
// Cost: two atomic loads (the second from the cache), one clock read, one
// multiplication (two more for a grant) and one CAS per grant; the clock read
// is outside the window between the last load and the CAS. A CAS that loses
// to another grant retries with the same reading, and reads the clock again
// only if the retry would deny.
type Bucket struct {
	tat atomic.Uint64
	p   bucketcore.Params
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
	u := uint64(n)
	tat := b.tat.Load()
	e := b.p.Elapsed()
	fresh := true // e was read after tat was loaded
	for {
		// Load again, so that the clock read is not inside the window in
		// which another grant makes the CAS fail. If the word has not
		// changed, it held tat throughout the reading.
		if cur := b.tat.Load(); cur != tat {
			tat, fresh = cur, false
		}
		if b.p.Limit.Denies(tat, e, u) {
			if fresh {
				return false // decided on a reading taken while the state was tat
			}
			// A denial needs a reading taken after the state it refuses
			// on: one older than the state could refuse a token that was
			// there throughout the call.
			e, fresh = b.p.Elapsed(), true
			continue
		}
		// A grant may use an older reading than the state's: it was read
		// within this call, and a grant on it is the textbook bucket's at
		// the later time too (fewer tokens seen, and the state, past
		// ceil(e/u) already, takes no reset from it).
		if b.tat.CompareAndSwap(tat, b.p.Limit.Granted(tat, e, u)) {
			return true
		}
		fresh = false
	}
}
