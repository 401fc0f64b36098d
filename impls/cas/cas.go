// Package cas synchronises with single-word atomic instructions and no
// locks: the counter is one atomic.Int64, and the bucket is one 64-bit word
// updated by compare-and-swap.
package cas

import (
	"context"
	"sync/atomic"
	"time"

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
//     at a reading taken within its call (bucketcore.Params.TakeWord says
//     why the order of loads and readings makes it so). Over any window of
//     W it grants at most Capacity + Rate × W.
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
	return b.p.TakeWord(&b.tat, uint64(n)) // see bucketcore.Params.TakeWord for the order of the readings
}

// The contend.Limiter methods. They are written once, in
// internal/bucketcore, over the bucket's word; none is on TryTake's path.

// Capacity returns the most tokens the bucket holds.
func (b *Bucket) Capacity() int64 { return b.p.Capacity() }

// Rate returns the refill rate in tokens per second, as configured.
func (b *Bucket) Rate() float64 { return b.p.Rate() }

// Tokens returns the whole tokens available now, negative while bookings
// owe more than the bucket holds (see contend.Limiter).
func (b *Bucket) Tokens() int64 { return b.p.Tokens(b.cell()) }

// Delay returns how long from now until n tokens are due, without taking
// them: 0 if TryTake(n) would be granted now.
func (b *Bucket) Delay(n int64) (time.Duration, error) { return b.p.Delay(b.cell(), n) }

// Reserve books n tokens, due now or later; see contend.Limiter.
func (b *Bucket) Reserve(n int64) (contend.Reservation, error) { return b.p.Reserve(b.cell(), n) }

// Wait books n tokens and blocks on a timer until they are due; see
// contend.Limiter.
func (b *Bucket) Wait(ctx context.Context, n int64) error { return b.p.Wait(ctx, b.cell(), n) }

func (b *Bucket) cell() bucketcore.Cell { return bucketcore.Word(&b.tat) }

var _ contend.Limiter = (*Bucket)(nil)
