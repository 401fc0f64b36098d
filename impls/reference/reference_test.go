package reference

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/mutex"
)

// The TestTimeRate_<Finding> tests pin each deviation of
// golang.org/x/time/rate named in TimeRateBucket's doc comment. Each drives
// a TimeRateBucket and the lab's mutex bucket through the same sequence and
// asserts both outcomes, so that a fixed x/time/rate fails the test and the
// doc comment (and the registry's Deviations) get updated.

// settableClock is a clock that tests set freely, backwards too, which
// contend.ManualClock refuses: it stands for readings taken before a lock
// and presented after another caller's later reading.
type settableClock struct{ t int64 }

func (c *settableClock) Now() int64 { return c.t }

// pair returns a TimeRateBucket and a lab mutex bucket on the same clock.
func pair(t *testing.T, cfg contend.BucketConfig) (xr *TimeRateBucket, lab contend.Bucket) {
	t.Helper()
	xr, err := NewTimeRateBucket(cfg)
	require.NoError(t, err)
	lab, err = mutex.NewBucket(cfg)
	require.NoError(t, err)
	return xr, lab
}

// drain takes one token at a time until a denial, at most limit times.
func drain(b contend.Bucket, limit int64) int64 {
	var got int64
	for got < limit && b.TryTake(1) {
		got++
	}
	return got
}

func TestXsyncCounter(t *testing.T) {
	c := NewXsyncCounter()
	assert.Zero(t, c.Load())
	c.Add(5)
	c.Add(-7)
	assert.Equal(t, int64(-2), c.Load())
}

func TestTimeRateBadConfig(t *testing.T) {
	for _, cfg := range []contend.BucketConfig{
		{Capacity: 0, Rate: 1},
		{Capacity: 1, Rate: math.NaN()},
		{Capacity: 1, Rate: math.Inf(1)},
	} {
		b, err := NewTimeRateBucket(cfg)
		var ce *contend.ConfigError
		assert.ErrorAs(t, err, &ce, "%+v", cfg)
		assert.Nil(t, b)
	}
}

// TestTimeRate_EarlyByUnderOneNanosecond: a token due at a whole number of
// nanoseconds is granted 1 ns before it, because the wait for the missing
// fraction is truncated to 0 ns. due is ceil(k × 1e9 / Rate) ns after the
// drain, the lab's refill grid.
func TestTimeRate_EarlyByUnderOneNanosecond(t *testing.T) {
	cases := []struct {
		rate float64
		k    int64 // the k-th token after draining
		due  int64 // ns after the drain
	}{
		{10, 1, 100_000_000},
		{3, 1, 333_333_334},
		{1000, 1000, 1_000_000_000},
		{1e9 / 7, 7, 49},
		{1234.5678, 1, 810_001},
	}
	for _, tc := range cases {
		clk := contend.NewManualClock(1_000_000_007)
		xr, lab := pair(t, contend.BucketConfig{Capacity: 1 << 20, Rate: tc.rate, Clock: clk})
		require.True(t, xr.TryTake(1<<20))
		require.True(t, lab.TryTake(1<<20))
		clk.Advance(time.Duration(tc.due - 1))
		assert.False(t, lab.TryTake(tc.k), "lab, rate %v: %d tokens 1 ns before due", tc.rate, tc.k)
		assert.True(t, xr.TryTake(tc.k), "x/time/rate, rate %v: %d tokens granted 1 ns before due", tc.rate, tc.k)
		assert.Negative(t, xr.Tokens(), "the early grant leaves x/time/rate's tokens negative")
	}
}

// TestTimeRate_EarlyAtLargeElapsed: after a long drain, Duration.Seconds
// rounds the elapsed time and tokens arrive tens to hundreds of ns early.
func TestTimeRate_EarlyAtLargeElapsed(t *testing.T) {
	cases := []struct {
		rate  float64
		k     int64
		due   int64 // ceil(k × 1e9 / rate)
		early int64 // how early x/time/rate grants it, measured
	}{
		{10, 8_589_934_593, 858_993_459_300_000_000, 107},
		{3, 8_589_934_593, 2_863_311_531_000_000_000, 238},
		{1234.5678, 1 << 40, 890_604_491_528_128_281, 74},
	}
	for _, tc := range cases {
		clk := contend.NewManualClock(1_000_000_007)
		// Capacity k: the largest request, and within 2^62 ns of refill at every rate here.
		cfg := contend.BucketConfig{Capacity: tc.k, Rate: tc.rate, Clock: clk}
		xr, lab := pair(t, cfg)
		require.True(t, xr.TryTake(tc.k))
		require.True(t, lab.TryTake(tc.k))
		clk.Advance(time.Duration(tc.due - tc.early))
		assert.False(t, lab.TryTake(tc.k), "lab, rate %v: %d tokens %d ns early", tc.rate, tc.k, tc.early)
		assert.True(t, xr.TryTake(tc.k), "x/time/rate, rate %v: %d tokens granted %d ns early", tc.rate, tc.k, tc.early)
	}
}

// TestTimeRate_HugeBurstNeverRunsDown: with burst 2^54, tokens - 1 rounds
// back to the same float64, so requests for 1 are granted at a frozen clock
// and the whole burst is still there afterwards.
func TestTimeRate_HugeBurstNeverRunsDown(t *testing.T) {
	const capacity = 1 << 54
	const small = 1000
	clk := contend.NewManualClock(0)
	// The clock is frozen: MaxRate only makes the capacity valid (at most 2^62 ns to refill).
	xr, lab := pair(t, contend.BucketConfig{Capacity: capacity, Rate: contend.MaxRate, Clock: clk})
	for _, b := range []contend.Bucket{xr, lab} {
		require.Equal(t, int64(small), drain(b, small))
	}
	assert.False(t, lab.TryTake(capacity), "lab: %d already taken, the full capacity is not there", small)
	assert.True(t, xr.TryTake(capacity), "x/time/rate: the full capacity is still there: %d tokens over", small)
}

// TestTimeRate_RequestRoundedToFloat: a request above 2^53 is subtracted as
// float64(n): 2^61 + 255 costs 2^61, so two such requests fit in 2^62.
func TestTimeRate_RequestRoundedToFloat(t *testing.T) {
	const capacity = 1 << 62
	const n = 1<<61 + 255
	clk := contend.NewManualClock(0)
	xr, lab := pair(t, contend.BucketConfig{Capacity: capacity, Rate: contend.MaxRate, Clock: clk}) // frozen clock, as above
	for _, b := range []contend.Bucket{xr, lab} {
		require.True(t, b.TryTake(n))
	}
	assert.False(t, lab.TryTake(n), "lab: 2×(2^61+255) exceeds 2^62")
	assert.True(t, xr.TryTake(n), "x/time/rate: the second request costs 2^61 too: 510 tokens over")
}

// TestTimeRate_BackwardsThenForwardDoubleCounts: a reading before the last
// one (a stale time.Now taken before the Limiter's mutex, presented after a
// later caller's) earns nothing, but a grant stores it as the last time,
// and the next reading earns the interval between them again. This is what
// makes x/time/rate over-grant under contention in the stress test; see
// https://github.com/golang/go/issues/56287.
func TestTimeRate_BackwardsThenForwardDoubleCounts(t *testing.T) {
	const start = 1_000_000_007
	clk := &settableClock{t: start}
	xr, lab := pair(t, contend.BucketConfig{Capacity: 100, Rate: 10, Clock: clk})
	granted := map[string]int64{}
	for name, b := range map[string]contend.Bucket{"x/time/rate": xr, "lab": lab} {
		clk.t = start
		require.True(t, b.TryTake(100), "%s: drain", name)
		clk.t = start + 1e9 // 10 tokens earned
		require.True(t, b.TryTake(1), "%s", name)
		clk.t = start + 5e8 // a stale reading
		got := int64(1)
		if b.TryTake(1) {
			got++
		}
		clk.t = start + 1e9 // the present again
		got += drain(b, 100)
		granted[name] = got
	}
	assert.Equal(t, int64(10), granted["lab"], "lab: Rate × 1 s")
	assert.Equal(t, int64(15), granted["x/time/rate"], "x/time/rate: the 0.5 s after the stale reading is earned twice")
}

// TestTimeRate_PartialTokenDiscardedWhenFull: a full bucket forgets the
// progress towards its next token, so after a take the next token comes a
// whole interval later. That is the textbook bucket, and x/time/rate and
// the lab now agree on it (before, the lab's tokens fell due on a grid fixed
// at construction, and it granted this second token at 1 s: two tokens
// 0.5 s apart on a limit of one per second).
func TestTimeRate_PartialTokenDiscardedWhenFull(t *testing.T) {
	clk := contend.NewManualClock(1_000_000_007)
	xr, lab := pair(t, contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk})
	clk.Advance(500 * time.Millisecond) // full: half a token of progress is capped away by x/time/rate
	for _, b := range []contend.Bucket{xr, lab} {
		require.True(t, b.TryTake(1))
	}
	clk.Advance(500 * time.Millisecond) // 1 s since creation, 0.5 s since the take
	assert.False(t, lab.TryTake(1), "lab: only half a token since the take")
	assert.False(t, xr.TryTake(1), "x/time/rate: only half a token since the take")
	clk.Advance(500 * time.Millisecond)
	assert.True(t, lab.TryTake(1), "lab: a whole second after the take")
	assert.True(t, xr.TryTake(1), "x/time/rate: a whole second after the take")
}
