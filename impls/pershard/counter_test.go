package pershard

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withGOMAXPROCS sets GOMAXPROCS for the rest of the test and restores it.
func withGOMAXPROCS(t testing.TB, n int) {
	t.Helper()
	prev := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

func TestSlotCount(t *testing.T) {
	tests := []struct{ procs, want int }{
		{-1, 1}, {0, 1}, {1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {8, 8}, {9, 16},
		{1000, 1024}, {1024, 1024}, {1025, 1024}, {1 << 20, 1024},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, slotCount(tt.procs), "slotCount(%d)", tt.procs)
	}
}

// TestLayout pins the padding the documentation promises: hot words 128
// bytes apart, and the bucket's global word alone in its 128-byte block.
func TestLayout(t *testing.T) {
	assert.Equal(t, uintptr(padSize), unsafe.Sizeof(stripe{}))
	assert.Equal(t, uintptr(padSize), unsafe.Sizeof(cache{}))
	var b Bucket
	assert.Equal(t, uintptr(padSize), unsafe.Offsetof(b.tat), "the global word starts the second block")
	assert.Equal(t, uintptr(2*padSize), unsafe.Sizeof(b), "two blocks")
	assert.Equal(t, uintptr(padSize), unsafe.Sizeof(Counter{}), "the counter's header fills one block")

	c := NewCounter()
	for i := 1; i < len(c.stripes); i++ {
		d := uintptr(unsafe.Pointer(&c.stripes[i].n)) - uintptr(unsafe.Pointer(&c.stripes[i-1].n))
		assert.Equal(t, uintptr(padSize), d)
	}
}

func TestCounterSequential(t *testing.T) {
	tests := []struct {
		name   string
		deltas []int64
		want   int64
	}{
		{"zero value", nil, 0},
		{"positive", []int64{1, 2, 3}, 6},
		{"mixed sign", []int64{5, -7, 1}, -1},
		{"wraps like int64", []int64{math.MaxInt64, 1}, math.MinInt64},
		{"wraps back", []int64{math.MinInt64, -1, 1}, math.MinInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCounter()
			for _, d := range tt.deltas {
				c.Add(d)
			}
			assert.Equal(t, tt.want, c.Load())
		})
	}
}

// stripeCount returns c's number of stripes: 1 (single) or len(stripes).
func stripeCount(c *Counter) int { return max(1, len(c.stripes)) }

// TestCounterZeroValue: the zero Counter counts, on its one stripe.
func TestCounterZeroValue(t *testing.T) {
	var c Counter
	c.Add(5)
	c.Add(-2)
	assert.Equal(t, int64(3), c.Load())
	assert.Equal(t, 1, stripeCount(&c))
}

// TestCounterConcurrentExact: 100 goroutines add mixed-sign deltas; once
// all have returned, Load is the exact sum, at several GOMAXPROCS and also
// when GOMAXPROCS grows after construction (ids wrap onto fewer stripes).
func TestCounterConcurrentExact(t *testing.T) {
	const goroutines, adds = 100, 2000
	tests := []struct {
		name              string
		buildAt, runAt    int
		wantStripesAtMost int
	}{
		{"GOMAXPROCS=1", 1, 1, 1},
		{"GOMAXPROCS=2", 2, 2, 2},
		{"GOMAXPROCS=8", 8, 8, 8},
		{"built at 1, run at 8", 1, 8, 1},
		{"built at 3, run at 8", 3, 8, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withGOMAXPROCS(t, tt.buildAt)
			c := NewCounter()
			require.Equal(t, tt.wantStripesAtMost, stripeCount(c))
			runtime.GOMAXPROCS(tt.runAt)

			var want int64
			for g := range goroutines {
				for i := range adds {
					want += delta(g, i)
				}
			}
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range adds {
						c.Add(delta(g, i))
					}
				})
			}
			wg.Wait()
			assert.Equal(t, want, c.Load())
			assert.NotZero(t, want, "the deltas must not cancel out, or a lost update could go unseen")
		})
	}
}

// delta is the i-th delta of goroutine g: mixed signs and magnitudes.
func delta(g, i int) int64 {
	d := int64(g*7+i*13)%201 - 90
	if i%3 == 0 {
		d *= 1 << 20
	}
	return d
}

func TestCounterZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	c := NewCounter()
	assert.Zero(t, testing.AllocsPerRun(1000, func() { c.Add(3) }), "Add")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = c.Load() }), "Load")
}
