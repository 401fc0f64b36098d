// Package naive is the lab's control: shared state with no synchronisation
// at all. It is deliberately wrong. Concurrent Adds lose updates, concurrent
// TryTakes grant the same tokens twice, and the race detector reports every
// concurrent use. The harness asserts all three; nothing else in the lab
// should ever look like this.
package naive

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a contend.Counter with no synchronisation: Add is a plain
// read-modify-write, so two goroutines can read the same value and one
// increment is lost. Correct only when used by one goroutine.
type Counter struct {
	n int64
}

// NewCounter returns a zero Counter.
func NewCounter() *Counter { return new(Counter) }

// Add adds delta, racily.
func (c *Counter) Add(delta int64) {
	c.n += delta
}

// Load returns the counter's value, racily.
func (c *Counter) Load() int64 { return c.n }

// Bucket is a contend.Bucket with no synchronisation. Two goroutines can
// read the same consumed count, both see enough tokens, and both be
// granted: it over-grants under concurrency. Correct only when used by one
// goroutine.
type Bucket struct {
	p   bucketcore.Params
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

// TryTake takes n tokens at once, or none, racily.
func (b *Bucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	next, ok := b.p.Limit.Take(b.tat, b.p.Elapsed(), uint64(n))
	if ok {
		b.tat = next
	}
	return ok
}
