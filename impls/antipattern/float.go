package antipattern

import (
	"sync"

	"github.com/contend-lab/contend"
)

// FloatBucket is the textbook token bucket in floating point, under a
// mutex:
//
//	now := float64(clock.Now())                         // ns
//	tokens = min(capacity, tokens + (now-last)*rate)    // rate in tokens/ns
//	last = now
//	if tokens >= n { tokens -= n; grant }
//
// It uses cfg.Clock. It is race-free and, while clock readings and token
// counts stay below 2^53, close to exact.
//
// WRONG, because a float64 holds 53 significant bits:
//
//   - Clock readings above 2^53 ns (104 days of uptime on a monotonic clock;
//     every Unix time in nanoseconds, about 1.7e18) are rounded to a
//     multiple of their ulp, 256 ns at 1.7e18, before anything subtracts
//     them. Elapsed time is then wrong by up to one ulp, either way: tokens
//     come up to 256 ns early (over-grant) or late (under-grant), and
//     at high rates 256 ns is many tokens. Concretely: Capacity 256 at
//     1e9 tokens/s on a clock starting at 1_700_000_000_000_000_127 ns
//     (which rounds down to 1.7e18): drain 256, advance the clock 2 ns to
//     ...129 (which rounds up to 1.7e18 + 256), and the bucket sees 256 ns
//     pass and grants 256 more: 512 tokens granted where Capacity + Rate ×
//     elapsed = 256 + 2 = 258 are allowed. The lab's buckets compute on the
//     integer readings and grant 258.
//   - Token counts above 2^53 are rounded too: with Capacity 2^54, tokens -
//     1 rounds back to tokens, so TryTake(1) at a frozen clock succeeds
//     forever; and a request n is rounded to float64(n) before it is
//     subtracted (2^61 + 255 tokens cost 2^61).
//   - Partial tokens earned while full are thrown away by the min (the
//     textbook behaviour, not an error, but it differs from the lab's grid).
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
