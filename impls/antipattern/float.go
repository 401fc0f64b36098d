package antipattern

import (
	"sync"

	"github.com/contend-lab/contend"
)

// FloatBucket is the textbook token bucket in floating point, under a
// mutex: float64 tokens, and float64 nanoseconds from cfg.Clock. It is
// race-free and, while clock readings and token counts stay below 2^53,
// close to exact.
//
// WRONG, because a float64 holds 53 significant bits: clock readings above
// 2^53 ns (104 days of uptime; every Unix time) are rounded before they are
// subtracted, so tokens come early or late, and token counts above 2^53
// are rounded too (see the package documentation for worked examples).
//
// Cost: one mutex, one clock read and a few float operations per call.
// Safe for concurrent use.
type FloatBucket struct {
	capacity int64
	capF     float64 // float64(capacity)
	rate     float64 // tokens per nanosecond: cfg.Rate / 1e9
	clock    contend.Clock

	mu     sync.Mutex
	tokens float64
	last   float64 // float64 of the previous clock reading, in ns
}

// NewFloatBucket returns a full FloatBucket on cfg.Clock, or a
// *contend.ConfigError.
func NewFloatBucket(cfg contend.BucketConfig) (*FloatBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clk := cfg.ClockOrDefault()
	capF := float64(cfg.Capacity)
	return &FloatBucket{
		capacity: cfg.Capacity,
		capF:     capF,
		rate:     cfg.Rate / 1e9,
		clock:    clk,
		tokens:   capF,
		last:     float64(clk.Now()),
	}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *FloatBucket) TryTake(n int64) bool {
	if n <= 0 || n > b.capacity {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := float64(b.clock.Now())
	b.tokens = min(b.capF, b.tokens+(now-b.last)*b.rate)
	b.last = now
	if want := float64(n); b.tokens >= want {
		b.tokens -= want
		return true
	}
	return false
}
