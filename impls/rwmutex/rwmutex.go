// Package rwmutex guards state with a sync.RWMutex: reads take the shared
// read lock, writes the exclusive lock. It pays off only when reads
// dominate and hold the lock long enough to overlap; for an 8-byte counter
// the read lock's own atomic traffic usually costs more than it saves,
// which the benchmarks show.
package rwmutex

import (
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a contend.Counter guarded by a sync.RWMutex. Add takes the
// write lock and Load the read lock; both are linearizable.
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

// Bucket is a contend.Bucket guarded by a sync.RWMutex, linearizable and
// exact like mutex.Bucket. A request first checks, under the read lock,
// whether it would be granted; a request that would be denied returns
// without ever taking the write lock, so the deny path runs concurrently.
// A request that would be granted takes the write lock and decides again.
type Bucket struct {
	p        bucketcore.Params
	mu       sync.RWMutex
	consumed uint64 // tokens consumed since start; see package refill
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
	elapsed := b.p.Elapsed()
	b.mu.RLock()
	_, ok := b.p.Sched.Take(b.consumed, elapsed, uint64(n), b.p.Capacity)
	b.mu.RUnlock()
	if !ok {
		return false // denied: nothing written, no exclusive lock taken
	}
	b.mu.Lock()
	next, ok := b.p.Sched.Take(b.consumed, elapsed, uint64(n), b.p.Capacity)
	if ok {
		b.consumed = next
	}
	b.mu.Unlock()
	return ok
}
