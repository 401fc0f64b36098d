package keyed

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/raceflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type lener interface{ Len() int }

func TestImplNames(t *testing.T) {
	var names []string
	for _, impl := range Impls() {
		names = append(names, impl.Name)
	}
	assert.Equal(t, []string{"xsync-mapof", "sync-map", "mutex-map"}, names)
}

// TestPerKeyIsolation: a key that has spent its burst is denied while
// another key still gets its full burst, and each key refills on its own.
func TestPerKeyIsolation(t *testing.T) {
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			clk := contend.NewManualClock(0)
			l, err := impl.New(contend.BucketConfig{Capacity: 3, Rate: 1, Clock: clk})
			require.NoError(t, err)

			for i := range 3 {
				assert.True(t, l.Allow(1), "key 1, request %d: within the burst", i)
			}
			assert.False(t, l.Allow(1), "key 1: burst spent")
			for i := range 3 {
				assert.True(t, l.Allow(2), "key 2, request %d: its own burst", i)
			}
			assert.False(t, l.Allow(2), "key 2: burst spent")
			assert.False(t, l.Allow(1), "key 1: still spent after key 2's requests")
			assert.True(t, l.Allow(math.MaxUint64), "a third key: its own burst")

			require.True(t, clk.Advance(time.Second))
			assert.True(t, l.Allow(1), "key 1: one token earned in 1 s")
			assert.False(t, l.Allow(1), "key 1: only one")
			assert.True(t, l.Allow(2), "key 2: one token earned in 1 s")
			assert.False(t, l.Allow(2), "key 2: only one")
			assert.Equal(t, 3, l.(lener).Len(), "keys with a bucket")
		})
	}
}

// TestNewKeyStartsFull: a key first seen late gets a full burst at that
// moment, not tokens for the time before it was seen, and not more than one
// burst.
func TestNewKeyStartsFull(t *testing.T) {
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			clk := contend.NewManualClock(0)
			l, err := impl.New(contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk})
			require.NoError(t, err)
			require.True(t, clk.Advance(time.Hour))
			assert.True(t, l.Allow(7))
			assert.True(t, l.Allow(7))
			assert.False(t, l.Allow(7), "an hour before the first request earns nothing")
		})
	}
}

// TestConcurrentExactPerKey: goroutines hammer overlapping keys, new and
// old, on a frozen clock; every key grants exactly its burst, neither more
// (the new-key race made two buckets) nor less.
func TestConcurrentExactPerKey(t *testing.T) {
	const (
		goroutines = 8
		keys       = 64
		capacity   = 5
		rounds     = 4 * capacity // requests per key per goroutine
	)
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			l, err := impl.New(contend.BucketConfig{Capacity: capacity, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			var granted [keys]atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for r := range rounds {
						for k := range keys {
							key := uint64((k + g*r) % keys) // goroutines visit keys in different orders
							if l.Allow(key) {
								granted[key].Add(1)
							}
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			for k := range keys {
				assert.Equal(t, int64(capacity), granted[k].Load(), "key %d", k)
			}
			assert.Equal(t, keys, l.(lener).Len())
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, impl := range Impls() {
		for _, tc := range []struct {
			name  string
			cfg   contend.BucketConfig
			field string
		}{
			{"zero capacity", contend.BucketConfig{Capacity: 0, Rate: 1}, "Capacity"},
			{"NaN rate", contend.BucketConfig{Capacity: 1, Rate: math.NaN()}, "Rate"},
			{"negative rate", contend.BucketConfig{Capacity: 1, Rate: -1}, "Rate"},
		} {
			t.Run(impl.Name+"/"+tc.name, func(t *testing.T) {
				l, err := impl.New(tc.cfg)
				var ce *contend.ConfigError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, tc.field, ce.Field)
				assert.Nil(t, l, "no Limiter with an error")
			})
		}
	}
}

// TestZeroAllocsKnownKey: a request for a key that already has a bucket
// allocates nothing, in every map (for sync.Map, this checks that the key's
// conversion to an interface stays on the stack). Skipped under -race, which
// allocates.
func TestZeroAllocsKnownKey(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("the race detector allocates; run without -race")
	}
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			l, err := impl.New(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			l.Allow(allocKey)
			assert.Zero(t, testing.AllocsPerRun(1000, func() { l.Allow(allocKey) }))
		})
	}
}

// allocKey is a variable, not a constant (a constant converted to an
// interface needs no allocation), above the runtime's preallocated small
// integers.
var allocKey uint64 = 1 << 40
