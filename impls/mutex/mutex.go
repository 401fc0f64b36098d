// Package mutex is the lab's baseline strategy: state guarded by a
// sync.Mutex. Every operation is linearizable; every operation, reads
// included, serialises on one lock.
//
// It also holds ReentrantMutex, a mutex that the goroutine holding it may
// acquire again, with a counter and bucket built on it.
package mutex

import (
	"context"
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a contend.Counter guarded by a sync.Mutex. Add and Load are
// linearizable. Cost: one lock and unlock per call, about 15 ns uncontended;
// under contention callers queue on the lock.
type Counter struct {
	mu sync.Mutex
	n  int64
}

// NewCounter returns a zero Counter.
func NewCounter() *Counter { return new(Counter) }

// Add adds delta to the counter.
func (c *Counter) Add(delta int64) {
	c.mu.Lock()
	c.n += delta
	c.mu.Unlock()
}

// Load returns the counter's value.
func (c *Counter) Load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Bucket is a contend.Bucket guarded by a sync.Mutex: exact and
// linearizable like cas.Bucket (the textbook bucket, within
// refill.Tolerance), with the clock read under the lock so that decisions
// take effect in the order of their readings.
type Bucket struct {
	p   bucketcore.Params
	mu  sync.Mutex
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
	b.mu.Lock()
	next, ok := b.p.Limit.Take(b.tat, b.p.Elapsed(), uint64(n))
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

func (b *Bucket) cell() bucketcore.Cell { return bucketcore.Locked(&b.mu, &b.tat) }

var _ contend.Limiter = (*Bucket)(nil)
