// Package bucketcore is what every token bucket of the lab computes at
// construction and reads on each request, so that the strategies in impls/
// differ only in how they synchronise the one integer of state that
// package refill defines.
package bucketcore

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/refill"
)

// Params is a validated BucketConfig in the form the hot path needs.
// It is immutable after New and safe to share between goroutines.
type Params struct {
	Limit refill.Limit
	Clock contend.Clock
	Start int64 // Clock reading at construction: the bucket starts full here
}

// New validates cfg and reads the clock once, for the bucket's start.
func New(cfg contend.BucketConfig) (Params, error) {
	if err := cfg.Validate(); err != nil {
		return Params{}, err
	}
	l, _ := cfg.Limit() // valid: Validate checked it
	clk := cfg.ClockOrDefault()
	return Params{Limit: l, Clock: clk, Start: clk.Now()}, nil
}

// Possible reports whether a request for n tokens can ever be granted:
// 0 < n <= Capacity. Buckets return false for any other n and change nothing.
func (p *Params) Possible(n int64) bool {
	return n > 0 && uint64(n) <= p.Limit.Capacity()
}

// Elapsed reads the clock and returns the nanoseconds since the bucket
// started, clamped to [0, Limit.MaxElapsed()]. Buckets call it after
// loading their state (inside the lock, or inside the CAS loop), so that
// the order in which decisions take effect is the order of their readings.
func (p *Params) Elapsed() uint64 {
	return p.Limit.Elapsed(p.Start, p.Clock.Now())
}
