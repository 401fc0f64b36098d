// Package rwmutex guards state with a sync.RWMutex: reads take the shared
// read lock, writes the exclusive lock. It pays off only when reads
// dominate and hold the lock long enough to overlap; for an 8-byte counter
// the read lock's own atomic traffic usually costs more than it saves,
// which the benchmarks show.
package rwmutex

import (
	"context"
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a [contend.Counter] guarded by a sync.RWMutex. Add takes the
// write lock and Load the read lock; both are linearizable, and the zero
// value is a zero counter. Cost: a lock and an unlock per call, and no
// allocation; the read lock is an atomic add on a shared word too, so Loads
// contend with each other (BenchmarkCounter).
type Counter struct {
	mu sync.RWMutex
	n  int64
}

// NewCounter returns a zero Counter.
func NewCounter() *Counter { return new(Counter) }

// Add adds delta to the counter under the write lock.
func (c *Counter) Add(delta int64) {
	c.mu.Lock()
	c.n += delta
	c.mu.Unlock()
}

// Load returns the counter's value under the read lock.
func (c *Counter) Load() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.n
}

// Bucket is a contend.Bucket guarded by a sync.RWMutex, exact and
// linearizable like mutex.Bucket. A request first decides, under the read
// lock, whether it would be granted; one that would be denied returns
// without taking the write lock, so denials run concurrently. One that would
// be granted takes the write lock and decides again, on the same reading
// unless it would now deny: a denial is always decided on a reading taken
// under the lock it decides under. Cost: a read lock, a clock read and a
// multiplication per denial; a grant adds the write lock and a second
// decision. No allocation.
type Bucket struct {
	p   bucketcore.Params
	mu  sync.RWMutex
	tat uint64 // see package refill
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
	b.mu.RLock()
	e := b.p.Elapsed()
	denied := b.p.Limit.Denies(b.tat, e, u)
	b.mu.RUnlock()
	if denied {
		return false // nothing written, no exclusive lock taken
	}
	b.mu.Lock()
	// The grant may use the reading taken under the read lock; a denial
	// (another grant came in between) needs one taken under this lock
	// (see bucketcore.Params.TakeWord for why).
	if b.p.Limit.Denies(b.tat, e, u) {
		e = b.p.Elapsed()
	}
	next, ok := b.p.Limit.Take(b.tat, e, u)
	if ok {
		b.tat = next
	}
	b.mu.Unlock()
	return ok
}

// The contend.Limiter methods, written once in internal/bucketcore over
// the state and its lock; none is on TryTake's path.

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

func (b *Bucket) cell() bucketcore.Cell { return bucketcore.RWLocked(&b.mu, &b.tat) }

var _ contend.Limiter = (*Bucket)(nil)
