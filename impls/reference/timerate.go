package reference

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/contend-lab/contend"
)

// clockBase is the time.Time that clock reading 0 maps to. Readings are
// int64 nanoseconds, at most ±292 years from 0 (negative inside a synctest
// bubble), so any base a few centuries after year 1 keeps base+reading a
// valid time.Time, and Time.Add and Time.Sub on it are exact integer
// arithmetic (Sub saturates only for differences beyond ±292 years). The
// base has no monotonic reading and is in UTC (a nil *Location), so Add
// copies a three-word value and allocates nothing.
var clockBase = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// TimeRateBucket is a [contend.Bucket] on golang.org/x/time/rate's
// Limiter, the token bucket most Go code uses, with Limit = Rate and burst
// = Capacity. TryTake(n) is Limiter.AllowN(t, n) with t the bucket's clock
// reading mapped onto a fixed time.Time base, so the Limiter follows the
// injected clock (a ManualClock, or the synctest bubble's fake time under
// the default clock) instead of time.Now. It starts full.
//
// Calls are linearizable (one mutex), but the Limiter's float64 arithmetic
// does not meet all of the lab's contract: it can grant early, beyond
// Capacity + Rate × elapsed, at very high rates, large elapsed times or
// huge bursts (the package documentation lists each finding and its test).
//
// Cost: one clock read, a Time.Add, and AllowN: one mutex, a few float64
// operations and time.Time arithmetic. No allocation.
type TimeRateBucket struct {
	lim      *rate.Limiter
	clock    contend.Clock
	capacity int64
}

// NewTimeRateBucket returns a full TimeRateBucket, or a
// *contend.ConfigError for a config the lab's buckets would refuse, or for
// a Capacity that does not fit in an int (x/time/rate's burst type).
func NewTimeRateBucket(cfg contend.BucketConfig) (*TimeRateBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Capacity > math.MaxInt {
		return nil, &contend.ConfigError{Field: "Capacity", Value: cfg.Capacity,
			Reason: fmt.Sprintf("does not fit in golang.org/x/time/rate's int burst (at most %d here)", math.MaxInt)}
	}
	return &TimeRateBucket{
		lim:      rate.NewLimiter(rate.Limit(cfg.Rate), int(cfg.Capacity)),
		clock:    cfg.ClockOrDefault(),
		capacity: cfg.Capacity,
	}, nil
}

// TryTake takes n tokens at once, or none: Limiter.AllowN at the clock's
// current reading. It returns false, changing nothing, when n <= 0 or
// n > Capacity.
func (b *TimeRateBucket) TryTake(n int64) bool {
	if n <= 0 || n > b.capacity {
		return false
	}
	return b.lim.AllowN(b.at(), int(n))
}

// Tokens returns the Limiter's float64 token count at the clock's current
// reading (negative after an early grant). For tests and reports.
func (b *TimeRateBucket) Tokens() float64 { return b.lim.TokensAt(b.at()) }

// at maps the clock's reading onto clockBase.
func (b *TimeRateBucket) at() time.Time {
	return clockBase.Add(time.Duration(b.clock.Now()))
}
