package harness

import (
	"testing"
	"time"
	_ "unsafe" // for go:linkname

	"github.com/contend-lab/contend"
)

// floorBenchmarks are the costs every implementation sits on: what a
// counter increment costs with no sharing at all, what each way of reading
// the clock costs, and what an uncontended atomic add costs. Each body runs
// n operations and returns a value derived from all of them, to sink.
var floorBenchmarks = []struct {
	workload, impl string
	run            func(n int) int64
}{
	// A goroutine-local int: the cost of the loop itself, the floor of any
	// counter.
	{"local-increment", "plain", func(n int) int64 {
		var x int64
		for range n {
			x++
		}
		return x
	}},
	// time.Now(): a wall-clock and a monotonic read.
	{"clock-read", "time-now", func(n int) int64 {
		var s int64
		for range n {
			s += int64(time.Now().Nanosecond())
		}
		return s
	}},
	// contend.DefaultClock.Now(), through the Clock interface as buckets call
	// it: time.Since on a monotonic reading, the monotonic read alone.
	{"clock-read", "monotonic", func(n int) int64 {
		clk := contend.DefaultClock
		var s int64
		for range n {
			s += clk.Now()
		}
		return s
	}},
	// runtime.nanotime, the runtime's monotonic clock, reached by
	// go:linkname (the runtime keeps it linkable): what time.Since reads
	// underneath. It is not faked inside a synctest bubble, which is why the
	// default clock cannot be it; this row shows what that costs.
	{"clock-read", "nanotime", func(n int) int64 {
		var s int64
		for range n {
			s += nanotime()
		}
		return s
	}},
	// time.Since of a fixed start, called directly.
	{"clock-read", "time-since", func(n int) int64 {
		start := time.Now()
		var s int64
		for range n {
			s += int64(time.Since(start))
		}
		return s
	}},
	// time.Now().UnixNano(): the wall-clock reading the wallclock
	// anti-pattern refills from.
	{"clock-read", "unixnano", func(n int) int64 {
		var s int64
		for range n {
			s += time.Now().UnixNano()
		}
		return s
	}},
	// contend.ManualClock.Now() through the Clock interface, as buckets call
	// it (an indirect call and one atomic load): what clock=frozen buckets pay.
	{"clock-read", "manual", func(n int) int64 {
		clk := opaqueClock(contend.NewManualClock(1))
		var s int64
		for range n {
			s += clk.Now()
		}
		return s
	}},
	// An atomic add on a word no other goroutine touches: the floor of any
	// atomic counter or CAS-based bucket.
	{"atomic-add", "uncontended", func(n int) int64 {
		var x paddedSlot
		for range n {
			x.n.Add(1)
		}
		return x.n.Load()
	}},
}

// BenchmarkFloor measures the floors in floorBenchmarks, on one goroutine.
func BenchmarkFloor(b *testing.B) {
	for _, f := range floorBenchmarks {
		b.Run("workload="+f.workload+"/impl="+f.impl+"/"+goroutinesName(1), func(b *testing.B) {
			b.ReportAllocs()
			sink += runParallel(b, 1, func(_, n int) int64 { return f.run(n) })
		})
	}
}

// opaqueClock returns c as an interface the compiler cannot see through, so
// that calls through it stay indirect, as in a bucket that holds its Clock in
// a field, instead of being devirtualised and inlined into the loop.
//
//go:noinline
func opaqueClock(c contend.Clock) contend.Clock { return c }

//go:linkname nanotime runtime.nanotime
func nanotime() int64
