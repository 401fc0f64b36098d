package antipattern

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/mutex"
)

// drain takes one token at a time until the bucket denies, and returns how
// many it granted. It stops at limit, so a bucket that never denies cannot
// hang the test.
func drain(b contend.Bucket, limit int64) int64 {
	var got int64
	for got < limit && b.TryTake(1) {
		got++
	}
	return got
}

// constructors lists every anti-pattern under a config-only constructor.
var constructors = []struct {
	name string
	new  func(contend.BucketConfig) (contend.Bucket, error)
}{
	{"per-goroutine", func(c contend.BucketConfig) (contend.Bucket, error) { return nilSafe(NewPerGoroutineBucket(c)) }},
	{"wallclock", func(c contend.BucketConfig) (contend.Bucket, error) { return nilSafe(NewWallClockBucket(c)) }},
	{"float", func(c contend.BucketConfig) (contend.Bucket, error) { return nilSafe(NewFloatBucket(c)) }},
}

// nilSafe avoids the typed-nil trap when a constructor fails.
func nilSafe[T contend.Bucket](b T, err error) (contend.Bucket, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}

func TestBadConfigIsConfigError(t *testing.T) {
	bad := []struct {
		cfg   contend.BucketConfig
		field string
	}{
		{contend.BucketConfig{Capacity: 0, Rate: 1}, "Capacity"},
		{contend.BucketConfig{Capacity: -5, Rate: 1}, "Capacity"},
		{contend.BucketConfig{Capacity: contend.MaxCapacity + 1, Rate: 1}, "Capacity"},
		{contend.BucketConfig{Capacity: 1, Rate: 0}, "Rate"},
		{contend.BucketConfig{Capacity: 1, Rate: math.NaN()}, "Rate"},
		{contend.BucketConfig{Capacity: 1, Rate: math.Inf(1)}, "Rate"},
		{contend.BucketConfig{Capacity: 1, Rate: 2e9}, "Rate"},
	}
	for _, c := range constructors {
		for _, tc := range bad {
			b, err := c.new(tc.cfg)
			var ce *contend.ConfigError
			if assert.True(t, errors.As(err, &ce), "%s(%+v): error %v", c.name, tc.cfg, err) {
				assert.Equal(t, tc.field, ce.Field, "%s(%+v)", c.name, tc.cfg)
			}
			assert.Nil(t, b, "%s(%+v)", c.name, tc.cfg)
		}
	}
}

// TestSaneOnOneGoroutine: with one goroutine, no clock step and small clock
// readings, each anti-pattern behaves like a bucket: starts full, refuses
// impossible requests, refills at its rate, caps at Capacity.
func TestSaneOnOneGoroutine(t *testing.T) {
	for _, c := range constructors {
		t.Run(c.name, func(t *testing.T) {
			clk := contend.NewManualClock(1_000_000_007)
			cfg := contend.BucketConfig{Capacity: 10, Rate: 10, Clock: clk}
			if c.name == "wallclock" {
				// Its wall clock is the manual clock, which never steps.
				b, err := NewWallClockBucketWith(cfg, clk.Now)
				require.NoError(t, err)
				checkSane(t, b, clk)
				return
			}
			b, err := c.new(cfg)
			require.NoError(t, err)
			checkSane(t, b, clk)
		})
	}
}

func checkSane(t *testing.T, b contend.Bucket, clk *contend.ManualClock) {
	t.Helper()
	for _, n := range []int64{0, -1, 11, math.MinInt64, math.MaxInt64} {
		assert.False(t, b.TryTake(n), "TryTake(%d) with Capacity 10", n)
	}
	assert.True(t, b.TryTake(7), "7 of a new bucket's 10")
	assert.False(t, b.TryTake(4), "4 of the 3 left")
	assert.Equal(t, int64(3), drain(b, 100), "the 3 left")
	clk.Advance(100*time.Millisecond - 1)
	assert.False(t, b.TryTake(1), "1 ns before the first token at 10/s")
	clk.Advance(1)
	assert.True(t, b.TryTake(1), "the first token, at 100 ms")
	clk.Advance(500 * time.Millisecond)
	assert.Equal(t, int64(5), drain(b, 100), "500 ms at 10/s")
	clk.Advance(time.Hour)
	assert.Equal(t, int64(10), drain(b, 100), "an hour idle: Capacity, not more")
}

// TestPerGoroutineGrantsNTimes: at a frozen clock a correct bucket grants
// exactly Capacity in total; the per-goroutine anti-pattern grants Capacity
// to every goroutine.
func TestPerGoroutineGrantsNTimes(t *testing.T) {
	const capacity = 100
	for _, goroutines := range []int{1, 2, 10} {
		t.Run("", func(t *testing.T) {
			b, err := NewPerGoroutineBucket(contend.BucketConfig{Capacity: capacity, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			var total atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					total.Add(drain(b, 10*capacity))
				}()
			}
			wg.Wait()
			assert.Equal(t, int64(goroutines*capacity), total.Load(),
				"%d goroutines at a frozen clock: each drains its own full bucket (allowed: %d)", goroutines, capacity)
			assert.Equal(t, goroutines, b.Buckets(), "one private bucket per goroutine")
		})
	}
}

func TestGoid(t *testing.T) {
	me := goid()
	require.NotZero(t, me)
	assert.Equal(t, me, goid(), "stable within a goroutine")
	ids := make(chan uint64, 8)
	for range cap(ids) {
		go func() { ids <- goid() }()
	}
	seen := map[uint64]bool{me: true}
	for range cap(ids) {
		id := <-ids
		assert.NotZero(t, id)
		assert.False(t, seen[id], "goroutine id %d seen twice", id)
		seen[id] = true
	}
}

// TestWallClockSteps drives a WallClockBucket and the lab's mutex bucket
// side by side: real time is a ManualClock (the mutex bucket's clock), and
// the wall clock is real time plus an offset that steps. After each event
// both buckets are drained; the totals are compared with what real time
// allows.
func TestWallClockSteps(t *testing.T) {
	type event struct {
		real time.Duration // real (monotonic) time passing
		jump time.Duration // then the wall clock steps by this much
	}
	cases := []struct {
		name      string
		capacity  int64
		rate      float64
		events    []event
		wantWall  int64 // tokens the wall-clock bucket grants
		wantMutex int64 // tokens the monotonic bucket grants: Capacity + Rate × real elapsed
	}{
		{"no step", 100, 10, []event{{time.Second, 0}, {500 * time.Millisecond, 0}}, 115, 115},
		{"+1h step, no real time", 100, 1000, []event{{0, time.Hour}}, 200, 100},
		{"+1h step, then 1 ms", 100, 1000, []event{{0, time.Hour}, {time.Millisecond, 0}}, 201, 101},
		{"+1 s step at 10/s: earns 10", 100, 10, []event{{0, time.Second}}, 110, 100},
		{"-1h step alone, then 1 s", 100, 10, []event{{0, -time.Hour}, {time.Second, 0}}, 110, 110},
		{"-1h then +1h correction", 100, 10, []event{{0, -time.Hour}, {0, time.Hour}}, 200, 100},
		{"-1 s then +1 s correction at 10/s", 100, 10, []event{{0, -time.Second}, {0, time.Second}}, 110, 100},
		{"+1h then -1h then 1 s", 100, 10, []event{{0, time.Hour}, {0, -time.Hour}, {time.Second, 0}}, 210, 110},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			real := contend.NewManualClock(1_000_000_007)
			var offset int64
			wall := func() int64 { return real.Now() + offset }
			cfg := contend.BucketConfig{Capacity: tc.capacity, Rate: tc.rate, Clock: real}
			wb, err := NewWallClockBucketWith(cfg, wall)
			require.NoError(t, err)
			mb, err := mutex.NewBucket(cfg)
			require.NoError(t, err)
			limit := 10 * tc.capacity
			gotWall, gotMutex := drain(wb, limit), drain(mb, limit)
			for _, e := range tc.events {
				real.Advance(e.real)
				offset += int64(e.jump)
				gotWall += drain(wb, limit)
				gotMutex += drain(mb, limit)
			}
			assert.Equal(t, tc.wantMutex, gotMutex, "monotonic bucket")
			assert.Equal(t, tc.wantWall, gotWall, "wall-clock bucket (allowed by real time: %d)", tc.wantMutex)
		})
	}
}

// TestWallClockDefaultIgnoresClock: NewWallClockBucket reads the system
// wall clock, not cfg.Clock, so a ManualClock that never moves does not
// stop it: this checks only that it runs and starts full.
func TestWallClockDefaultIgnoresClock(t *testing.T) {
	b, err := NewWallClockBucket(contend.BucketConfig{Capacity: 1, Rate: contend.MinRate, Clock: contend.NewManualClock(0)})
	require.NoError(t, err)
	assert.Equal(t, int64(1), drain(b, 100))
}

// TestFloatRounding: the float bucket on a ManualClock, with the numbers
// from its doc comment. allowed is Capacity + Rate × elapsed; a correct
// bucket grants exactly that here.
func TestFloatRounding(t *testing.T) {
	const unix = 1_700_000_000_000_000_000 // 1.7e18 ns: a Unix time in 2023; a multiple of its ulp, 256
	cases := []struct {
		name     string
		capacity int64
		rate     float64
		start    int64
		advance  time.Duration // after the first drain
		allowed  int64
		want     int64 // what the float bucket grants in total
	}{
		{"small clock, exact", 256, 1e9, 1_000_000_007, 2, 258, 258},
		{"1.7e18+127 rounds down, +2 ns rounds up by 256: over-grant", 256, 1e9, unix + 127, 2, 258, 512},
		{"1.7e18, +100 ns rounds back down: under-grant", 256, 1e9, unix, 100, 356, 256},
		{"1.7e18, +128 ns rounds to even (down): under-grant", 256, 1e9, unix, 128, 384, 256},
		{"1.7e18, +129 ns rounds up to +256: over-grant", 256, 1e9, unix, 129, 385, 512},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := contend.NewManualClock(tc.start)
			cfg := contend.BucketConfig{Capacity: tc.capacity, Rate: tc.rate, Clock: clk}
			fb, err := NewFloatBucket(cfg)
			require.NoError(t, err)
			mb, err := mutex.NewBucket(cfg)
			require.NoError(t, err)
			require.True(t, fb.TryTake(tc.capacity), "drain the new float bucket")
			require.True(t, mb.TryTake(tc.capacity), "drain the new mutex bucket")
			clk.Advance(tc.advance)
			limit := 4 * tc.capacity
			assert.Equal(t, tc.allowed, tc.capacity+drain(mb, limit), "the lab's mutex bucket grants what is allowed")
			assert.Equal(t, tc.want, tc.capacity+drain(fb, limit), "float bucket (allowed %d)", tc.allowed)
		})
	}
}

// TestFloatHugeCapacity: above 2^53 tokens, subtracting 1 rounds back to the
// same float64, so at a frozen clock the bucket never runs down.
func TestFloatHugeCapacity(t *testing.T) {
	cases := []struct {
		name     string
		capacity int64
		small    int64 // request repeated 1000 times at a frozen clock
		wantOver int64 // tokens granted beyond Capacity
	}{
		{"2^53: exact", 1 << 53, 1, 0},
		{"2^54: tokens-1 rounds back", 1 << 54, 1, 1000},
		{"2^62: tokens-255 rounds back", 1 << 62, 255, 255_000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The clock is frozen, so the rate only has to admit the capacity
			// (Capacity / Rate at most 2^62 ns): MaxRate admits them all.
			b, err := NewFloatBucket(contend.BucketConfig{Capacity: tc.capacity, Rate: contend.MaxRate, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			var granted int64
			for range 1000 {
				if b.TryTake(tc.small) {
					granted += tc.small
				}
			}
			// Then whatever is left, in one request if the bucket claims
			// to be full, else by halves.
			for n := tc.capacity; n > 0; n /= 2 {
				for i := 0; i < 4 && b.TryTake(n); i++ { // bounded: a bucket that never runs down must not hang the test
					granted += n
				}
			}
			assert.Equal(t, tc.wantOver, granted-tc.capacity, "granted %d at a frozen clock, Capacity %d", granted, tc.capacity)
		})
	}
}

// TestConcurrentUseIsRaceFree runs every anti-pattern from several
// goroutines, for the race detector; wrongness is not checked here.
func TestConcurrentUseIsRaceFree(t *testing.T) {
	for _, c := range constructors {
		t.Run(c.name, func(t *testing.T) {
			clk := contend.NewManualClock(0)
			b, err := c.new(contend.BucketConfig{Capacity: 50, Rate: 1e6, Clock: clk})
			require.NoError(t, err)
			var granted atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 200 {
						if b.TryTake(1) {
							granted.Add(1)
						}
						clk.Advance(time.Microsecond)
					}
				}()
			}
			wg.Wait()
			assert.Positive(t, granted.Load())
		})
	}
}

// TestGridGrantsTwiceInHalfASecond: the flaw GridBucket is kept for. On a
// limit of one per second it grants at 0 s, 1.5 s and 2.0 s (two tokens
// 0.5 s apart), where the textbook bucket refuses at 2.0 s.
func TestGridGrantsTwiceInHalfASecond(t *testing.T) {
	clk := contend.NewManualClock(0)
	b, err := NewGridBucket(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk})
	require.NoError(t, err)
	for _, s := range []struct {
		at   int64
		want bool
	}{{0, true}, {1_500_000_000, true}, {2_000_000_000, true}, {2_900_000_000, false}, {3_000_000_000, true}} {
		clk.Set(s.at)
		assert.Equal(t, s.want, b.TryTake(1), "at %d ns", s.at)
	}
	// Since construction it keeps its bound: 4 tokens by 3 s at capacity 1.
	_, err = NewGridBucket(contend.BucketConfig{Capacity: 0, Rate: 1})
	var ce *contend.ConfigError
	assert.ErrorAs(t, err, &ce)
}
