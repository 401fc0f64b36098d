package keyed

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/raceflag"
)

func TestImplNames(t *testing.T) {
	var names []string
	for _, impl := range Impls() {
		names = append(names, impl.Name)
	}
	assert.Equal(t, []string{"xsync-mapof", "xsync-mapof-mutex", "sync-map", "mutex-map"}, names)
}

// TestImplsExactPerKey: every Impl (the baselines too), hammered by
// goroutines on overlapping keys, new and old, on a frozen clock, grants
// each key exactly its burst: the new-key race never makes two buckets.
func TestImplsExactPerKey(t *testing.T) {
	const goroutines, keys, capacity, rounds = 8, 64, 5, 20
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			l, err := impl.New(contend.BucketConfig{Capacity: capacity, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			var granted [keys]atomic.Int64
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for r := range rounds {
						for k := range uint64(keys) {
							key := (k + uint64(g*r)) % keys // goroutines visit keys in different orders
							if l.Allow(key) {
								granted[key].Add(1)
							}
						}
					}
				})
			}
			wg.Wait()
			for k := range keys {
				assert.Equal(t, int64(capacity), granted[k].Load(), "key %d", k)
			}
			assert.Equal(t, keys, l.(interface{ Len() int }).Len())
			_, err = impl.New(contend.BucketConfig{Capacity: 0, Rate: 1})
			var ce *contend.ConfigError
			assert.ErrorAs(t, err, &ce, "an invalid configuration")
		})
	}
}

// strategies are the Options of every Strategy, by name.
var strategies = []struct {
	name string
	opt  Option
}{{"cas", WithStrategy(CAS)}, {"mutex", WithStrategy(Mutex)}}

// forEach runs f for every Strategy, as subtests.
func forEach(t *testing.T, f func(t *testing.T, strategy Option)) {
	for _, s := range strategies {
		t.Run(s.name, func(t *testing.T) { f(t, s.opt) })
	}
}

func newLimiter[K comparable](t *testing.T, cfg contend.BucketConfig, opts ...Option) *Limiter[K] {
	t.Helper()
	l, err := New[K](cfg, opts...)
	require.NoError(t, err)
	return l
}

// TestPerKeyIsolation: a key that has spent its burst is denied while
// another key still gets its full burst, and each key refills on its own.
func TestPerKeyIsolation(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		clk := contend.NewManualClock(0)
		l := newLimiter[string](t, contend.BucketConfig{Capacity: 3, Rate: 1, Clock: clk}, s)
		for i := range 3 {
			assert.True(t, l.Allow("a"), "key a, request %d: within the burst", i)
		}
		assert.False(t, l.Allow("a"), "key a: burst spent")
		assert.True(t, l.TryTake("b", 3), "key b: its own burst")
		assert.False(t, l.Allow("b"), "key b: burst spent")
		assert.False(t, l.Allow("a"), "key a: still spent after key b's requests")
		assert.True(t, l.Allow(""), "the empty key: its own burst")
		require.True(t, clk.Advance(time.Second))
		assert.True(t, l.Allow("a"), "key a: one token earned in 1 s")
		assert.False(t, l.Allow("a"), "key a: only one")
		assert.True(t, l.Allow("b"), "key b: one token earned in 1 s")
		assert.False(t, l.Allow("b"), "key b: only one")
		assert.Equal(t, 3, l.Len(), "keys with a bucket")
	})
}

// TestNewKeyStartsFull: a key first seen late gets a full burst at that
// moment, not tokens for the time before it was seen.
func TestNewKeyStartsFull(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		clk := contend.NewManualClock(0)
		l := newLimiter[uint64](t, contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk}, s)
		require.True(t, clk.Advance(time.Hour))
		assert.True(t, l.Allow(7))
		assert.True(t, l.Allow(7))
		assert.False(t, l.Allow(7), "an hour before the first request earns nothing")
	})
}

// TestImpossibleRequests: n <= 0 or n > Capacity is refused at once, and
// makes no bucket.
func TestImpossibleRequests(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		l := newLimiter[string](t, contend.BucketConfig{Capacity: 3, Rate: 1}, s)
		for _, n := range []int64{0, -1, 4, math.MinInt64} {
			want := &contend.TokenError{N: n, Capacity: 3}
			assert.False(t, l.TryTake("k", n))
			_, err := l.Delay("k", n)
			assert.Equal(t, want, err)
			_, err = l.Reserve("k", n)
			assert.Equal(t, want, err)
			assert.Equal(t, want, l.Wait(context.Background(), "k", n))
		}
		assert.Zero(t, l.Len())
	})
}

// TestZeroValue: the zero Limiter denies every request, holds no key, and
// refuses Delay, Reserve and Wait with a *contend.TokenError, at once.
func TestZeroValue(t *testing.T) {
	var l Limiter[string]
	assert.False(t, l.Allow("a"))
	assert.False(t, l.TryTake("a", 1))
	assert.Zero(t, l.Tokens("a"))
	want := &contend.TokenError{N: 1, Capacity: 0}
	_, err := l.Delay("a", 1)
	assert.Equal(t, want, err)
	_, err = l.Reserve("a", 1)
	assert.Equal(t, want, err)
	assert.Equal(t, want, l.Wait(context.Background(), "a", 1))
	assert.Zero(t, l.Sweep())
	assert.Zero(t, l.Len())
	assert.Zero(t, l.Capacity())
	assert.Zero(t, l.Rate())
}

// TestWaitingAPI: per key, Delay (which makes no bucket), Tokens, Reserve
// and Cancel, and Wait returning at the due time (synctest).
func TestWaitingAPI(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter[string](t, contend.BucketConfig{Capacity: 2, Rate: 4}, s) // a token every 250 ms
			d, err := l.Delay("a", 2)
			require.NoError(t, err)
			assert.Zero(t, d)
			assert.Equal(t, int64(2), l.Tokens("a"))
			assert.Zero(t, l.Len(), "Delay and Tokens make no bucket")
			assert.Equal(t, int64(2), l.Capacity())
			assert.Equal(t, 4.0, l.Rate())

			require.True(t, l.TryTake("a", 2))
			d, err = l.Delay("a", 1)
			require.NoError(t, err)
			assert.Equal(t, 250*time.Millisecond, d)
			r, err := l.Reserve("a", 2)
			require.NoError(t, err)
			assert.Equal(t, 500*time.Millisecond, r.Delay())
			assert.Equal(t, int64(-2), l.Tokens("a"), "owed")
			assert.True(t, r.Cancel(), "the last booking, not yet due")
			assert.Equal(t, int64(0), l.Tokens("a"))

			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), "a", 2))
			assert.Equal(t, 500*time.Millisecond, time.Since(start))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			var de *contend.DeadlineError
			require.ErrorAs(t, l.Wait(ctx, "a", 1), &de)
			assert.Equal(t, 250*time.Millisecond, de.Delay)
			assert.NoError(t, l.Wait(context.Background(), "b", 2), "another key: its own burst")
		})
	})
}

// op is one step of the differential test.
type op struct {
	kind    int // 0 TryTake, 1 Delay, 2 Tokens, 3 Reserve, 4 Cancel
	key     string
	n       int64
	advance time.Duration
	res     int // Cancel: which reservation
}

// TestEvictionNeverChangesADecision is the differential test: a Limiter
// that sweeps after every step and one that never sweeps, on one
// ManualClock, answer every request alike: TryTake, Delay, Tokens,
// Reserve (its delay) and Cancel. Rates with and without a whole number
// of nanoseconds per token (the shared time origin is what makes the
// latter exact too).
func TestEvictionNeverChangesADecision(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		for _, cfg := range []struct {
			capacity int64
			rate     float64
		}{{3, 1}, {5, 1000}, {4, 3}, {10, 1e9 / 7}, {2, 1234.5678}} {
			t.Run(fmt.Sprintf("capacity=%d/rate=%v", cfg.capacity, cfg.rate), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(cfg.capacity), 17))
				clk := contend.NewManualClock(rng.Int64N(1 << 50))
				bc := contend.BucketConfig{Capacity: cfg.capacity, Rate: cfg.rate, Clock: clk}
				token := time.Duration(1e9 / cfg.rate)
				keep := newLimiter[string](t, bc, s, WithSweepEvery(0))
				evict := newLimiter[string](t, bc, s, WithSweepEvery(0), WithIdle(0))
				idle := newLimiter[string](t, bc, s, WithSweepEvery(0), WithIdle(2*token+1))
				var rk, re, ri []contend.Reservation
				dropped, droppedIdle := 0, 0
				for i := range 3000 {
					o := op{kind: rng.IntN(5), key: strconv.Itoa(rng.IntN(6)), n: 1 + rng.Int64N(cfg.capacity)}
					switch rng.IntN(4) {
					case 0:
					case 1:
						o.advance = time.Duration(rng.Int64N(int64(token)))
					case 2:
						o.advance = time.Duration(rng.Int64N(int64(token) * cfg.capacity * 2))
					default:
						o.advance = time.Duration(rng.Int64N(int64(token) * 3 * cfg.capacity))
					}
					clk.Advance(o.advance)
					switch o.kind {
					case 0:
						want := keep.TryTake(o.key, o.n)
						require.Equal(t, want, evict.TryTake(o.key, o.n), "step %d: %+v", i, o)
						require.Equal(t, want, idle.TryTake(o.key, o.n), "step %d: %+v", i, o)
					case 1:
						dk, err := keep.Delay(o.key, o.n)
						require.NoError(t, err)
						for _, l := range []*Limiter[string]{evict, idle} {
							d, err := l.Delay(o.key, o.n)
							require.NoError(t, err)
							require.Equal(t, dk, d, "step %d: %+v", i, o)
						}
					case 2:
						require.Equal(t, keep.Tokens(o.key), evict.Tokens(o.key), "step %d: %+v", i, o)
						require.Equal(t, keep.Tokens(o.key), idle.Tokens(o.key), "step %d: %+v", i, o)
					case 3:
						a, err := keep.Reserve(o.key, o.n)
						require.NoError(t, err)
						b, err := evict.Reserve(o.key, o.n)
						require.NoError(t, err)
						c, err := idle.Reserve(o.key, o.n)
						require.NoError(t, err)
						require.Equal(t, a.Delay(), b.Delay(), "step %d: %+v", i, o)
						require.Equal(t, a.Delay(), c.Delay(), "step %d: %+v", i, o)
						rk, re, ri = append(rk, a), append(re, b), append(ri, c)
					case 4:
						if len(rk) > 0 {
							j := len(rk) - 1 - rng.IntN(min(len(rk), 3))
							want := rk[j].Cancel()
							require.Equal(t, want, re[j].Cancel(), "step %d: Cancel of reservation %d", i, j)
							require.Equal(t, want, ri[j].Cancel(), "step %d: Cancel of reservation %d", i, j)
						}
					}
					dropped += evict.Sweep()
					droppedIdle += idle.Sweep()
				}
				assert.Positive(t, dropped, "the run dropped no bucket")
				assert.Positive(t, droppedIdle, "the run dropped no idle bucket")
				assert.Less(t, droppedIdle, dropped, "the idle time kept some")
				assert.Less(t, evict.Len(), keep.Len()+1)
				assert.Equal(t, 6, keep.Len(), "the never-sweeping limiter keeps every key")
			})
		}
	})
}

// TestSweepKeepsWhatIsNotFull: a sweep drops full buckets only: not one
// with tokens spent, nor one with tokens booked ahead until they are due
// and earned back.
func TestSweepKeepsWhatIsNotFull(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		clk := contend.NewManualClock(0)
		l := newLimiter[string](t, contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk}, s, WithSweepEvery(0), WithIdle(0))
		require.True(t, l.TryTake("spent", 1))
		require.True(t, l.TryTake("full", 1))
		clk.Advance(time.Second) // "full" is full again; so is "spent"
		require.True(t, l.TryTake("spent", 1))
		_, err := l.Reserve("booked", 2)
		require.NoError(t, err)
		r, err := l.Reserve("booked", 2) // due at 3 s, full again at 5 s
		require.NoError(t, err)
		assert.Equal(t, 3, l.Len())
		assert.Equal(t, 1, l.Sweep(), "only the full one")
		assert.Equal(t, 2, l.Len())
		clk.Advance(time.Second) // 2 s: "spent" full
		assert.Equal(t, 1, l.Sweep())
		clk.Advance(3*time.Second - 1) // 5 s - 1 ns
		assert.Zero(t, l.Sweep(), "not yet full")
		clk.Advance(1)
		assert.Equal(t, 1, l.Sweep(), "full at 5 s")
		assert.Zero(t, l.Len())
		assert.False(t, r.Cancel(), "long due")
	})
}

// TestIdleTime: a sweep drops a bucket only once it has been full for
// the idle time: not a moment before, nor one granted meanwhile.
func TestIdleTime(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		clk := contend.NewManualClock(0)
		l := newLimiter[string](t, contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk}, s, WithSweepEvery(0), WithIdle(10*time.Second))
		require.True(t, l.Allow("a")) // full again at 1 s
		require.True(t, l.Allow("b"))
		clk.Advance(5 * time.Second)
		require.True(t, l.Allow("b"))  // full again at 6 s
		clk.Advance(6*time.Second - 1) // 11 s - 1 ns
		assert.Zero(t, l.Sweep(), "a has been full for 10 s - 1 ns")
		clk.Advance(1)
		assert.Equal(t, 1, l.Sweep(), "a: 10 s")
		assert.Equal(t, 1, l.Len(), "b: 5 s")
		clk.Advance(5 * time.Second)
		assert.Equal(t, 1, l.Sweep(), "b: 10 s")
		_, err := New[string](contend.BucketConfig{Capacity: 1, Rate: 1}, WithIdle(-1))
		var ce *contend.ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "Idle", ce.Field)
	})
}

// TestSweepRacesRequests: goroutines take tokens from a few keys on a
// frozen clock while another sweeps without pause. A bucket is full only
// before its first grant, so sweeps may drop it only then; each key must
// grant exactly its capacity: a grant on a dropped bucket would be one
// more.
func TestSweepRacesRequests(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		const goroutines, keys, capacity, rounds = 8, 16, 3, 50
		for range 20 {
			l := newLimiter[uint64](t, contend.BucketConfig{Capacity: capacity, Rate: 1, Clock: contend.NewManualClock(0)}, s, WithSweepEvery(1))
			var granted [keys]atomic.Int64
			var stop atomic.Bool
			var sweeps atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for !stop.Load() {
					sweeps.Add(int64(l.Sweep()))
					runtime.Gosched()
				}
			})
			var workers sync.WaitGroup
			for g := range goroutines {
				workers.Go(func() {
					for r := range rounds {
						for k := range uint64(keys) {
							key := (k + uint64(g*r)) % keys
							if l.Allow(key) {
								granted[key].Add(1)
							}
						}
					}
				})
			}
			workers.Wait()
			stop.Store(true)
			wg.Wait()
			for k := range keys {
				require.Equal(t, int64(capacity), granted[k].Load(), "key %d", k)
			}
		}
	})
}

// TestFirstRequestGranted: goroutines each ask once for many new keys
// while another goroutine sweeps without pause; a new key's bucket is full,
// so every request must be granted, even when a sweep drops the bucket
// between its lookup and its grant (the request then makes another).
func TestFirstRequestGranted(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		const goroutines = 4
		keys := 100_000
		if raceflag.Enabled {
			keys = 20_000 // the race detector widens the window anyway
		}
		clk := contend.NewManualClock(0)
		l := newLimiter[int](t, contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk}, s, WithSweepEvery(0))
		var next, denied atomic.Int64
		var stop atomic.Bool
		var wg, workers sync.WaitGroup
		wg.Go(func() {
			for !stop.Load() {
				l.Sweep()
				clk.Advance(time.Second) // every bucket full again: the map stays small, sweeps quick
			}
		})
		for range goroutines {
			workers.Go(func() {
				for k := next.Add(1); k <= int64(keys); k = next.Add(1) {
					if !l.Allow(int(k)) {
						denied.Add(1)
					}
				}
			})
		}
		workers.Wait()
		stop.Store(true)
		wg.Wait()
		assert.Zero(t, denied.Load())
		t.Logf("%d keys, %d buckets made: %d dropped between lookup and grant", keys, l.made.Load(), l.made.Load()-int64(keys))
	})
}

// sweepingClock is a ManualClock that, when armed, runs a sweep inside
// the next reading: in a request, after it loaded its bucket's state and
// before its compare-and-swap, the window a concurrent sweep can hit.
type sweepingClock struct {
	contend.ManualClock
	armed atomic.Bool
	sweep func() int
	swept int
}

func (c *sweepingClock) Now() int64 {
	if c.armed.CompareAndSwap(true, false) {
		c.swept += c.sweep()
	}
	return c.ManualClock.Now()
}

// TestRequestMeetsASweep: with the CAS strategy, a sweep drops a new
// key's (full) bucket between a request's load of its state and its
// compare-and-swap; the request must notice the mark, make a new bucket,
// and be granted: TryTake, Reserve and Wait.
func TestRequestMeetsASweep(t *testing.T) {
	ops := map[string]func(l *Limiter[string], key string) error{
		"TryTake": func(l *Limiter[string], key string) error {
			if !l.TryTake(key, 2) {
				return fmt.Errorf("denied")
			}
			return nil
		},
		"Reserve": func(l *Limiter[string], key string) error {
			r, err := l.Reserve(key, 2)
			if err == nil && r.Delay() != 0 {
				err = fmt.Errorf("delay %v", r.Delay())
			}
			return err
		},
		"Wait": func(l *Limiter[string], key string) error { return l.Wait(context.Background(), key, 2) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			clk := new(sweepingClock)
			l := newLimiter[string](t, contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk}, WithSweepEvery(0))
			clk.sweep = l.Sweep
			clk.armed.Store(true)
			assert.NoError(t, op(l, "k"), "a full bucket's tokens")
			assert.Equal(t, 1, clk.swept, "the sweep dropped the bucket the request had loaded")
			assert.Equal(t, int64(2), l.made.Load(), "and the request made another")
			assert.False(t, l.TryTake("k", 1), "the tokens were taken from the bucket that stayed")
		})
	}
}

// TestAutomaticSweep: with WithSweepEvery(n), making keys starts sweeps
// that drop the idle ones; the Limiter stays within twice n plus what one
// sweep's run admits.
func TestAutomaticSweep(t *testing.T) {
	forEach(t, func(t *testing.T, s Option) {
		synctest.Test(t, func(t *testing.T) {
			clk := contend.NewManualClock(0)
			l := newLimiter[int](t, contend.BucketConfig{Capacity: 1, Rate: 1000, Clock: clk}, s, WithSweepEvery(100), WithIdle(0))
			most := 0
			for k := range 10_000 {
				require.True(t, l.Allow(k))
				clk.Advance(time.Millisecond) // each key is full again 1 ms later
				if k%50 == 0 {
					synctest.Wait() // let a sweep that started finish
				}
				most = max(most, l.Len())
			}
			synctest.Wait()
			assert.LessOrEqual(t, most, 2*100+50, "bounded by the sweeps")
			assert.GreaterOrEqual(t, most, 100, "no sweep before 100 new keys")
			// A sweep may drop a new key's bucket before its first
			// request used it; the request then makes another.
			assert.GreaterOrEqual(t, l.made.Load(), int64(10_000))
		})
	})
}

// TestInvalidConfig: a bad bucket configuration or option is a
// *contend.ConfigError naming the field, and no Limiter.
func TestInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   contend.BucketConfig
		opt   Option
		field string
	}{
		{"zero capacity", contend.BucketConfig{Capacity: 0, Rate: 1}, nil, "Capacity"},
		{"NaN rate", contend.BucketConfig{Capacity: 1, Rate: math.NaN()}, nil, "Rate"},
		{"negative rate", contend.BucketConfig{Capacity: 1, Rate: -1}, nil, "Rate"},
		{"nil manual clock", contend.BucketConfig{Capacity: 1, Rate: 1, Clock: (*contend.ManualClock)(nil)}, nil, "Clock"},
		{"unknown strategy", contend.BucketConfig{Capacity: 1, Rate: 1}, WithStrategy(Strategy(7)), "Strategy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			l, err := New[string](tc.cfg, opts...)
			var ce *contend.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)
			assert.Nil(t, l, "no Limiter with an error")
		})
	}
	assert.Equal(t, "Strategy(7)", Strategy(7).String())
	assert.Equal(t, "atomic", CAS.String())
	assert.Equal(t, "mutex", Mutex.String())
}

// TestZeroAllocsKnownKey: a request for a key that has a bucket allocates
// nothing, with string or integer keys, granted or denied. Skipped under
// -race, which allocates.
func TestZeroAllocsKnownKey(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("the race detector allocates; run without -race")
	}
	forEach(t, func(t *testing.T, s Option) {
		ls := newLimiter[string](t, contend.BucketConfig{Capacity: 1, Rate: 1, Clock: contend.NewManualClock(0)}, s)
		key := strconv.Itoa(1 << 40) // not a constant
		ls.Allow(key)
		assert.Zero(t, testing.AllocsPerRun(1000, func() { ls.Allow(key) }), "string key, denied")
		lu := newLimiter[uint64](t, contend.BucketConfig{Capacity: 1e9, Rate: 1e9, Clock: contend.NewManualClock(0)}, s)
		lu.Allow(allocKey)
		assert.Zero(t, testing.AllocsPerRun(1000, func() { lu.Allow(allocKey) }), "integer key, granted")
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = ls.Delay(key, 1) }), "Delay")
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = lu.Wait(context.Background(), allocKey, 1) }), "Wait due at once")
	})
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			l, err := impl.New(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			l.Allow(allocKey)
			assert.Zero(t, testing.AllocsPerRun(1000, func() { l.Allow(allocKey) }))
		})
	}
}

// allocKey is a variable, not a constant, above the runtime's
// preallocated small integers.
var allocKey uint64 = 1 << 40

// TestStringKeysAreCopied: the map holds its own copy of a string key, not
// the string it was sliced from.
func TestStringKeysAreCopied(t *testing.T) {
	l := newLimiter[string](t, contend.BucketConfig{Capacity: 1, Rate: 1})
	body := strings.Repeat("client-1 and the long request body that the key is sliced from ", 100)
	key := body[:8]
	require.True(t, l.Allow(key))
	var stored string
	l.m.Range(func(k string, _ *cell) bool { stored = k; return false })
	assert.Equal(t, "client-1", stored)
	assert.NotSame(t, unsafe.StringData(body), unsafe.StringData(stored), "a copy")
	assert.False(t, l.Allow(body[:8]), "the same key")
}

// TestMemoryPerKey holds the package documentation's bound: at most 91
// bytes of heap per string key of up to 16 bytes, key copy included, the
// Limiter's own fixed size excluded (it is made before the first reading).
// Skipped under -race, which changes allocation sizes.
func TestMemoryPerKey(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("the race detector changes allocation sizes")
	}
	forEach(t, func(t *testing.T, s Option) {
		for _, keys := range []int{1_000, 20_000, 100_000} {
			names := make([]string, keys)
			for k := range names {
				names[k] = fmt.Sprintf("10.%d.%d.%d", k>>16&0xff, k>>8&0xff, k&0xff)
			}
			// No automatic sweep: one in progress keeps the table it walks
			// reachable, the old one if the table grew meanwhile.
			l := newLimiter[string](t, contend.BucketConfig{Capacity: 2, Rate: 1, Clock: contend.NewManualClock(0)}, s, WithSweepEvery(0))
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.HeapAlloc
			for _, k := range names {
				require.True(t, l.Allow(k))
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			perKey := float64(ms.HeapAlloc-before) / float64(keys)
			require.Equal(t, keys, l.Len())
			assert.LessOrEqual(t, perKey, 91.0, "%d keys", keys)
			t.Logf("%d keys: %.1f bytes per key", keys, perKey)
			runtime.KeepAlive(l)
			runtime.KeepAlive(names) // else freed between the readings, and subtracted
		}
	})
}
