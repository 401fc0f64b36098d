package pershard

import (
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingClock is a ManualClock that counts its readings.
type countingClock struct {
	*contend.ManualClock
	reads atomic.Int64
}

func (c *countingClock) Now() int64 {
	c.reads.Add(1)
	return c.ManualClock.Now()
}

// state is a snapshot of a bucket's words, for checking that a call
// changed nothing.
type state struct {
	tat    uint64
	caches []uint64
}

func snapshot(b *Bucket) state {
	s := state{tat: b.tat.Load()}
	for i := range b.caches {
		s.caches = append(s.caches, b.caches[i].w.Load())
	}
	return s
}

// held returns the tokens the global word holds at the clock's reading.
func held(b *Bucket) uint64 { return b.p.Limit.Tokens(b.tat.Load(), b.p.Elapsed()) }

// setHeld makes the global word of a bucket whose clock still reads its
// start hold h tokens.
func setHeld(t *testing.T, b *Bucket, h uint64) {
	t.Helper()
	require.Zero(t, b.p.Elapsed(), "setHeld needs the clock at the bucket's start")
	var tat uint64
	if c := b.p.Limit.Capacity(); h < c {
		tat, _ = b.p.Limit.Take(0, 0, c-h)
	}
	b.tat.Store(tat)
	require.Equal(t, h, held(b))
}

// cached returns the tokens held in b's caches, checking that no cache is
// claimed and none holds more than B.
func cached(t *testing.T, b *Bucket) uint64 {
	t.Helper()
	var sum uint64
	for i := range b.caches {
		v := b.caches[i].w.Load()
		require.Zero(t, v&refilling, "cache %d left claimed", i)
		require.LessOrEqual(t, v, b.batch, "cache %d holds more than B", i)
		sum += v
	}
	return sum
}

// drain takes n tokens at a time from the calling goroutine until denied,
// and returns how many tokens it took.
func drain(b *Bucket, n int64) int64 {
	var got int64
	for b.TryTake(n) {
		got += n
	}
	return got
}

// ms is the emission interval of a 1000 tokens/s bucket: T = 1 ms exactly.
const ms = int64(time.Millisecond)

func TestNewBucketRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   contend.BucketConfig
		field string
	}{
		{"zero capacity", contend.BucketConfig{Capacity: 0, Rate: 1}, "Capacity"},
		{"negative capacity", contend.BucketConfig{Capacity: -5, Rate: 1}, "Capacity"},
		{"capacity above 2^62", contend.BucketConfig{Capacity: contend.MaxCapacity + 1, Rate: 1}, "Capacity"},
		{"zero rate", contend.BucketConfig{Capacity: 1, Rate: 0}, "Rate"},
		{"NaN rate", contend.BucketConfig{Capacity: 1, Rate: math.NaN()}, "Rate"},
		{"infinite rate", contend.BucketConfig{Capacity: 1, Rate: math.Inf(1)}, "Rate"},
		{"rate above max", contend.BucketConfig{Capacity: 1, Rate: 2e9}, "Rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBucket(tt.cfg)
			assert.Nil(t, b)
			var ce *contend.ConfigError
			require.True(t, errors.As(err, &ce), "want a *contend.ConfigError, got %v", err)
			assert.Equal(t, tt.field, ce.Field)
			assert.Zero(t, UnderGrantBound(tt.cfg))
		})
	}
}

func TestBatchSize(t *testing.T) {
	tests := []struct {
		capacity uint64
		slots    int
		want     uint64
	}{
		{1, 1, 1}, {1, 8, 1}, {3, 1, 1}, {4, 1, 1}, {8, 1, 2}, {31, 8, 1}, {64, 8, 2},
		{100, 2, 12}, {1000, 2, 64}, {1000, 8, 31}, {contend.MaxCapacity, 1024, maxBatch},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, batchSize(tt.capacity, tt.slots), "batchSize(%d, %d)", tt.capacity, tt.slots)
	}
}

func TestUnderGrantBound(t *testing.T) {
	tests := []struct {
		procs    int
		capacity int64
		want     int64
	}{
		{1, 1, 1}, {1, 100, 25}, {1, 1000, 64},
		{2, 1, 2}, {2, 100, 24}, {2, 1000, 128},
		{3, 100, 24}, // 4 slots × 6
		{8, 1, 8}, {8, 100, 8 * 3}, {8, 1000, 8 * 31}, {8, 1 << 20, 8 * 64},
	}
	for _, tt := range tests {
		withGOMAXPROCS(t, tt.procs)
		cfg := contend.BucketConfig{Capacity: tt.capacity, Rate: 10, Clock: contend.NewManualClock(0)}
		assert.Equal(t, tt.want, UnderGrantBound(cfg), "GOMAXPROCS %d, Capacity %d", tt.procs, tt.capacity)
		b, err := NewBucket(cfg)
		require.NoError(t, err)
		assert.Equal(t, tt.want, b.UnderGrantBound())
		runtime.GOMAXPROCS(tt.procs * 4)
		assert.Equal(t, tt.want, b.UnderGrantBound(), "a bucket's own bound is fixed at construction")
	}
}

// TestTryTakeRefusesImpossible: n <= 0 and n > Capacity return false and
// write nothing, on a full bucket, a partly used one, and an empty one.
func TestTryTakeRefusesImpossible(t *testing.T) {
	const capacity = 50
	for _, used := range []int64{0, 7, capacity} {
		b, err := NewBucket(contend.BucketConfig{Capacity: capacity, Rate: 1000, Clock: contend.NewManualClock(0)})
		require.NoError(t, err)
		for range used {
			require.True(t, b.TryTake(1))
		}
		before := snapshot(b)
		for _, n := range []int64{0, -1, math.MinInt64, capacity + 1, math.MaxInt64} {
			assert.False(t, b.TryTake(n), "used %d, TryTake(%d)", used, n)
			assert.Equal(t, before, snapshot(b), "used %d, TryTake(%d) changed the bucket", used, n)
		}
	}
}

// TestSequential checks the single-goroutine behaviour exactly against the
// fixed-point schedule, on both paths (n <= B through the cache, n > B
// straight to the global word).
func TestSequential(t *testing.T) {
	withGOMAXPROCS(t, 1)
	tests := []struct {
		name     string
		capacity int64
		n        int64
	}{
		{"capacity 1", 1, 1},
		{"small batches", 10, 1}, // B = 2
		{"n equal to B", 100, 25},
		{"n above B", 100, 40}, // B = 25
		{"n = capacity", 100, 100},
		{"large, cached", 1000, 1}, // B = 64
		{"large, n above B", 1000, 65},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &countingClock{ManualClock: contend.NewManualClock(0)}
			b, err := NewBucket(contend.BucketConfig{Capacity: tt.capacity, Rate: 1000, Clock: clk})
			require.NoError(t, err)
			want := tt.capacity / tt.n * tt.n
			assert.Equal(t, want, drain(b, tt.n), "starts full")
			assert.Zero(t, cached(t, b))

			clk.Advance(time.Duration(3 * ms))
			assert.Equal(t, min(3, tt.capacity)/tt.n*tt.n, drain(b, tt.n), "earns one token per ms, up to Capacity")

			clk.Advance(time.Hour)
			assert.Equal(t, want, drain(b, tt.n), "full again after an hour, and no more")

			before := snapshot(b)
			reads := clk.reads.Load()
			assert.False(t, b.TryTake(tt.n))
			assert.Equal(t, before, snapshot(b), "a denial writes nothing")
			assert.Greater(t, clk.reads.Load(), reads, "a denial reads the clock")
		})
	}
}

// TestCommonPathSkipsClock: after one refill, the next requests are served
// from the P's cache without reading the clock or writing the global word.
func TestCommonPathSkipsClock(t *testing.T) {
	withGOMAXPROCS(t, 1)
	clk := &countingClock{ManualClock: contend.NewManualClock(0)}
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1000, Clock: clk})
	require.NoError(t, err)
	require.Equal(t, uint64(64), b.batch)

	reads := clk.reads.Load()
	require.True(t, b.TryTake(1))
	assert.Equal(t, reads+1, clk.reads.Load(), "the refill reads the clock once")
	assert.Equal(t, uint64(1000-65), held(b), "one batch: n plus B")
	assert.Equal(t, uint64(64), cached(t, b))

	reads = clk.reads.Load() // held read the clock too
	for i := range 64 {
		require.True(t, b.TryTake(1), "cached token %d", i)
	}
	assert.Equal(t, reads, clk.reads.Load(), "cached tokens need no clock")
	assert.Equal(t, uint64(1000-65), held(b), "cached tokens leave the global word alone")
	assert.Zero(t, cached(t, b))

	// n > B goes to the global word for exactly n.
	require.True(t, b.TryTake(65))
	assert.Equal(t, uint64(1000-130), held(b))
	assert.Zero(t, cached(t, b))
}

// TestRefillFillsAtMostB: whatever the cache held, a refill leaves it
// holding at most B, and draws from the global word only what it keeps
// plus what it caches.
func TestRefillFillsAtMostB(t *testing.T) {
	withGOMAXPROCS(t, 1)
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1000, Clock: contend.NewManualClock(0)})
	require.NoError(t, err)
	for _, n := range []int64{1, 10, 64, 30, 64, 5, 64, 64} {
		before := held(b)
		cachedBefore := cached(t, b)
		require.True(t, b.TryTake(n))
		drawn := before - held(b)
		assert.Equal(t, cachedBefore+drawn, cached(t, b)+uint64(n), "tokens are conserved on TryTake(%d)", n)
		assert.LessOrEqual(t, cached(t, b), b.batch)
	}
}

// TestStartsFull: many goroutines on many Ps draw from a fresh bucket with
// a stopped clock; they get at most Capacity, and what they left in caches
// is found by later requests, so exactly Capacity is granted in the end.
func TestStartsFull(t *testing.T) {
	for _, procs := range []int{1, 2, 8} {
		for _, capacity := range []int64{1, 3, 7, 100, 1000, 100000} {
			withGOMAXPROCS(t, procs)
			b, err := NewBucket(contend.BucketConfig{Capacity: capacity, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			var granted atomic.Int64
			var wg sync.WaitGroup
			for range 4 * procs {
				wg.Go(func() { granted.Add(drain(b, 1)) })
			}
			wg.Wait()
			assert.LessOrEqual(t, granted.Load(), capacity, "GOMAXPROCS %d, Capacity %d: over-granted", procs, capacity)
			assert.Equal(t, uint64(granted.Load())+cached(t, b), uint64(capacity)-held(b), "tokens conserved")
			assert.GreaterOrEqual(t, granted.Load(), capacity-b.UnderGrantBound())

			rest := drain(b, 1)
			assert.Equal(t, capacity, granted.Load()+rest, "GOMAXPROCS %d, Capacity %d: Capacity in total", procs, capacity)
			assert.Zero(t, cached(t, b))
		}
	}
}

// TestNeverOverGrants: goroutines on 2 and 8 Ps take mixed sizes (through
// the caches and straight to the global word) while the clock advances;
// in total they never get more than Capacity + Rate × elapsed.
func TestNeverOverGrants(t *testing.T) {
	tests := []struct {
		procs    int
		capacity int64
	}{
		{2, 100}, {2, 1000}, {8, 5}, {8, 100}, {8, 1000},
	}
	for _, tt := range tests {
		withGOMAXPROCS(t, tt.procs)
		clk := contend.NewManualClock(0)
		b, err := NewBucket(contend.BucketConfig{Capacity: tt.capacity, Rate: 1000, Clock: clk})
		require.NoError(t, err)
		maxN := min(tt.capacity, int64(2*b.batch+3))

		// Workers make a fixed number of requests, yielding when denied; a
		// driver advances the clock by 0 to 6 ms at a time until they finish.
		var granted atomic.Int64
		var running atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 * tt.procs {
			running.Add(1)
			wg.Go(func() {
				defer running.Add(-1)
				for i := int64(w); i < int64(w)+3000; i++ {
					n := 1 + i*7%maxN
					if b.TryTake(n) {
						granted.Add(n)
					} else {
						runtime.Gosched()
					}
				}
			})
		}
		for i := 0; running.Load() > 0; i++ {
			clk.Advance(time.Duration(int64(i%7) * ms))
			runtime.Gosched()
		}
		wg.Wait()

		limit := tt.capacity + clk.Now()/ms // T = 1 ms exactly
		assert.LessOrEqual(t, granted.Load(), limit, "GOMAXPROCS %d, Capacity %d", tt.procs, tt.capacity)
		assert.LessOrEqual(t, granted.Load()+int64(cached(t, b)), limit, "only tokens the global word granted")
		assert.Positive(t, granted.Load())

		granted.Add(drain(b, 1))
		assert.LessOrEqual(t, granted.Load(), limit, "after draining the caches")
	}
}

// TestUnderGrantWithinBound: demand exceeds supply on 2 and 8 Ps; a driver
// advances the clock only when the global word is empty, so no token is
// forfeited. Then every earned token is either granted or in a cache, and
// the caches hold at most S × B.
func TestUnderGrantWithinBound(t *testing.T) {
	tests := []struct {
		procs    int
		capacity int64
		mixed    bool // requests of 1, B/2+1 and B tokens, not only 1
	}{
		{2, 100, false}, {2, 1000, true}, {8, 8, false}, {8, 100, true}, {8, 1000, false}, {8, 1000, true},
	}
	for _, tt := range tests {
		withGOMAXPROCS(t, tt.procs)
		clk := contend.NewManualClock(0)
		b, err := NewBucket(contend.BucketConfig{Capacity: tt.capacity, Rate: 1000, Clock: clk})
		require.NoError(t, err)
		sizes := []int64{1}
		if tt.mixed {
			sizes = []int64{int64(b.batch), 1, int64(b.batch/2 + 1)}
		}

		var granted atomic.Int64
		var done atomic.Bool
		var wg sync.WaitGroup
		for w := range 4 * tt.procs {
			wg.Go(func() {
				for i := w; !done.Load(); i++ {
					n := sizes[i%len(sizes)]
					if b.TryTake(n) {
						granted.Add(n)
					} else if i%16 == 0 {
						runtime.Gosched()
					}
				}
			})
		}
		globalEmpty := func() bool {
			return held(b) == 0
		}
		step := time.Duration(max(tt.capacity/2, 1) * ms) // earns Capacity/2 tokens
		for range 20 {
			for !globalEmpty() {
				runtime.Gosched()
			}
			clk.Advance(step)
		}
		for !globalEmpty() {
			runtime.Gosched()
		}
		done.Store(true)
		wg.Wait()

		supply := tt.capacity + clk.Now()/ms
		inCaches := int64(cached(t, b))
		assert.Equal(t, supply, granted.Load()+inCaches, "GOMAXPROCS %d, Capacity %d: every token granted or cached", tt.procs, tt.capacity)
		assert.LessOrEqual(t, inCaches, b.UnderGrantBound())
		assert.GreaterOrEqual(t, granted.Load(), supply-UnderGrantBound(contend.BucketConfig{Capacity: tt.capacity, Rate: 1000}))
	}
}

// TestBurstAfterIdle: tokens cached before an idle period add to the full
// global bucket afterwards, up to Capacity + S × B, never more.
func TestBurstAfterIdle(t *testing.T) {
	withGOMAXPROCS(t, 2)
	clk := contend.NewManualClock(0)
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1000, Clock: clk})
	require.NoError(t, err)
	require.True(t, b.TryTake(1))
	inCaches := int64(cached(t, b))
	require.Equal(t, int64(b.batch), inCaches)

	clk.Advance(time.Hour)
	burst := drain(b, 1)
	assert.Equal(t, 1000+inCaches, burst)
	assert.LessOrEqual(t, burst, 1000+BurstBound(contend.BucketConfig{Capacity: 1000, Rate: 1000}), "the stated windowed bound")
}

// TestIdleDecades: a bucket left idle for decades (up to the clock's
// maximum) neither overflows nor grants more than Capacity at once.
func TestIdleDecades(t *testing.T) {
	const year = 365*24*time.Hour + 6*time.Hour
	tests := []struct {
		name     string
		rate     float64
		capacity int64
		idle     time.Duration
		want     int64
	}{
		{"1/s, 50 years", 1, 100, 50 * year, 100},
		{"max rate, 50 years", contend.MaxRate, 1000, 50 * year, 1000},
		{"max rate, max capacity, 200 years", contend.MaxRate, contend.MaxCapacity, 200 * year, -1},
		{"one per 146 years, 50 years", contend.MinRate, 1, 50 * year, 0},
		{"one per 146 years, 200 years", contend.MinRate, 1, 200 * year, 1},
		{"1/s, to the end of the clock", 1, 100, math.MaxInt64, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := contend.NewManualClock(0)
			b, err := NewBucket(contend.BucketConfig{Capacity: tt.capacity, Rate: tt.rate, Clock: clk})
			require.NoError(t, err)
			if tt.want < 0 {
				// Too many tokens to drain one by one: take them in Capacity-sized requests.
				require.True(t, b.TryTake(tt.capacity))
				require.False(t, b.TryTake(1))
				require.True(t, clk.Advance(tt.idle))
				assert.True(t, b.TryTake(tt.capacity))
				assert.False(t, b.TryTake(1))
				return
			}
			require.Equal(t, tt.capacity, drain(b, 1))
			require.True(t, clk.Advance(tt.idle))
			assert.Equal(t, tt.want, drain(b, 1))
			clk.Advance(tt.idle) // saturates at the clock's maximum
			assert.LessOrEqual(t, drain(b, 1), tt.capacity)
		})
	}
}

// TestCapacityBelowSlots: a bucket smaller than its number of caches still
// grants exactly its capacity in total, from many Ps.
func TestCapacityBelowSlots(t *testing.T) {
	withGOMAXPROCS(t, 8)
	for _, capacity := range []int64{1, 2, 3, 7} {
		clk := contend.NewManualClock(0)
		b, err := NewBucket(contend.BucketConfig{Capacity: capacity, Rate: 1000, Clock: clk})
		require.NoError(t, err)
		require.Len(t, b.caches, 8)
		for round := int64(0); round < 5; round++ {
			var granted atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() { granted.Add(drain(b, 1)) })
			}
			wg.Wait()
			granted.Add(drain(b, 1))
			assert.Equal(t, capacity, granted.Load(), "Capacity %d, round %d", capacity, round)
			clk.Advance(time.Hour)
		}
	}
}

func TestBucketZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	withGOMAXPROCS(t, 1)
	clk := contend.NewManualClock(0)
	b, err := NewBucket(contend.BucketConfig{Capacity: 1 << 40, Rate: 1e6, Clock: clk})
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { b.TryTake(1) }), "cached and refill paths")
	assert.Zero(t, testing.AllocsPerRun(100, func() { b.TryTake(1000) }), "global path")
	empty, err := NewBucket(contend.BucketConfig{Capacity: 1, Rate: contend.MinRate, Clock: clk})
	require.NoError(t, err)
	require.True(t, empty.TryTake(1))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { empty.TryTake(1) }), "deny path")
}

// TestStealsFromAnotherCache: when the global word is empty, a request is
// served from whichever cache holds all n, whatever P asks; a request no
// single cache can serve is denied and writes nothing.
func TestStealsFromAnotherCache(t *testing.T) {
	withGOMAXPROCS(t, 8)
	const capacity = 1000
	for k := range 8 {
		b, err := NewBucket(contend.BucketConfig{Capacity: capacity, Rate: 1, Clock: contend.NewManualClock(0)})
		require.NoError(t, err)
		require.Len(t, b.caches, 8)
		// Global word empty; cache k holds 5 tokens, cache k+1 holds 4.
		setHeld(t, b, 0)
		b.caches[k].w.Store(5)
		b.caches[(k+1)%8].w.Store(4)

		before := snapshot(b)
		assert.False(t, b.TryTake(6), "no cache holds 6 (5 + 4 are not gathered)")
		assert.Equal(t, before, snapshot(b), "the denial wrote nothing")

		assert.True(t, b.TryTake(5), "cache %d holds 5", k)
		assert.Equal(t, uint64(4), cached(t, b))
		assert.Equal(t, int64(4), drain(b, 1))
		assert.Zero(t, cached(t, b))
		assert.Zero(t, held(b), "stealing leaves the global word alone")
		assert.Equal(t, before.tat, b.tat.Load())
	}
}

// TestClaimedCacheGoesGlobal: while another goroutine refills this P's
// cache (flag set), a request it cannot serve goes to the global word for
// exactly n and leaves the cache and its flag alone; a request the cache
// can serve still takes from it.
func TestClaimedCacheGoesGlobal(t *testing.T) {
	withGOMAXPROCS(t, 1) // one cache, so this goroutine's home is cache 0
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1, Clock: contend.NewManualClock(0)})
	require.NoError(t, err)
	setHeld(t, b, 997)
	b.caches[0].w.Store(refilling | 3)

	assert.True(t, b.TryTake(2), "served from the claimed cache")
	assert.Equal(t, refilling|1, b.caches[0].w.Load())
	assert.Equal(t, uint64(997), held(b))

	assert.True(t, b.TryTake(2), "served by the global word")
	assert.Equal(t, refilling|1, b.caches[0].w.Load(), "no deposit into a claimed cache")
	assert.Equal(t, uint64(995), held(b), "exactly n from the global word")
}

// hookClock runs hook, once, on its next reading.
type hookClock struct {
	contend.ManualClock
	hook func()
}

func (c *hookClock) Now() int64 {
	if h := c.hook; h != nil {
		c.hook = nil
		h()
	}
	return c.ManualClock.Now()
}

// TestRefillRace: a refill that loses its cache to another refill between
// looking at it and claiming it must not deposit on top of it (which would
// let the cache exceed B, and the under-grant its bound). The other refill
// runs inside the first one's clock read.
func TestRefillRace(t *testing.T) {
	withGOMAXPROCS(t, 1) // both refills target cache 0
	clk := new(hookClock)
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1, Clock: clk})
	require.NoError(t, err)
	require.Equal(t, uint64(64), b.batch)
	clk.hook = func() { assert.True(t, b.TryTake(1), "inner refill") }

	require.True(t, b.TryTake(1), "outer refill")
	assert.Nil(t, clk.hook, "the hook ran")
	assert.Equal(t, uint64(63), cached(t, b), "the outer request took a token the inner refill cached")
	assert.Equal(t, uint64(1000-65), held(b), "one batch only")
}

// TestShortSupplyTakesExactlyN: when the global word holds less than a
// batch, a refill takes exactly n and caches nothing, leaving the scarce
// tokens where every P can reach them.
func TestShortSupplyTakesExactlyN(t *testing.T) {
	withGOMAXPROCS(t, 1)
	clk := contend.NewManualClock(0)
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1000, Clock: clk})
	require.NoError(t, err)
	require.Equal(t, uint64(64), b.batch)
	setHeld(t, b, 40) // less than n + B

	for i := range uint64(4) {
		require.True(t, b.TryTake(10))
		assert.Equal(t, 40-10*(i+1), held(b))
		assert.Zero(t, cached(t, b))
	}
	assert.False(t, b.TryTake(1))

	clk.Advance(time.Duration(100 * ms)) // 100 tokens: enough for a batch
	require.True(t, b.TryTake(10))
	assert.Equal(t, uint64(100-10-64), held(b), "n plus a batch of B")
	assert.Equal(t, uint64(64), cached(t, b))
}

// TestDenialLooksHomeAgain: a request that found its cache short reads the
// clock; a refill that lands in that cache meanwhile (here: inside the
// clock read) must not leave the request denied while its own cache holds
// the tokens. The denial's steal ends with home, which it last saw before
// the clock.
func TestDenialLooksHomeAgain(t *testing.T) {
	withGOMAXPROCS(t, 1) // one cache: home is the only place to look
	clk := new(hookClock)
	b, err := NewBucket(contend.BucketConfig{Capacity: 1000, Rate: 1, Clock: clk})
	require.NoError(t, err)
	require.Equal(t, uint64(64), b.batch)
	setHeld(t, b, 65) // n + B: one batch
	clk.hook = func() { assert.True(t, b.TryTake(1), "inner refill") }

	assert.True(t, b.TryTake(1), "denied while its own cache holds %d tokens", cached(t, b))
	assert.Nil(t, clk.hook, "the hook ran")
	assert.Equal(t, uint64(63), cached(t, b), "the outer request took one of the inner refill's tokens")
}
