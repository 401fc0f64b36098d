package harness

import (
	"sync/atomic"
	"testing"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/raceflag"
)

// readMostlyPeriod sets the read-mostly mix: one Add in every readMostlyPeriod
// operations, the rest Loads (1 Add per 15 Loads: 6.25% writes, 93.75% reads).
const readMostlyPeriod = 16

// counterWorkloads are BenchmarkCounter's workloads. Each runs n operations
// on c and returns a value derived from every Load, to sink.
var counterWorkloads = []struct {
	name string
	run  func(c contend.Counter, n int) int64
}{
	// add-only: every operation is Add(1).
	{"add-only", func(c contend.Counter, n int) int64 {
		for range n {
			c.Add(1)
		}
		return 0
	}},
	// read-mostly: operation i is an Add(1) when i%16 == 0 and a Load otherwise.
	{"read-mostly", func(c contend.Counter, n int) int64 {
		var s int64
		for i := range n {
			if i%readMostlyPeriod == 0 {
				c.Add(1)
			} else {
				s += c.Load()
			}
		}
		return s
	}},
}

// BenchmarkCounter measures every registered Counter, plus the floor
// padded-slots, under two workloads:
//
//   - add-only: every operation is Add(1).
//   - read-mostly: 1 Add(1) in every 16 operations, the other 15 are Load
//     (6.25% writes, 93.75% reads).
//
// ns/op is wall time per operation with all goroutines together, and ops/s
// its inverse, the aggregate throughput. The racy
// control (naive) is skipped under -race.
func BenchmarkCounter(b *testing.B) {
	for _, w := range counterWorkloads {
		b.Run("workload="+w.name, func(b *testing.B) {
			for _, impl := range Counters() {
				if impl.Guarantee == Racy && raceflag.Enabled {
					continue
				}
				b.Run("impl="+impl.Name, func(b *testing.B) {
					for _, g := range benchGoroutines() {
						b.Run(goroutinesName(g), func(b *testing.B) {
							g := resolveGoroutines(g)
							b.ReportAllocs()
							c := impl.New()
							sink += runParallel(b, g, func(_, n int) int64 { return w.run(c, n) })
							sink += c.Load()
							reportPerSecond(b, float64(b.N), "ops/s")
						})
					}
				})
			}
			b.Run("impl=padded-slots", func(b *testing.B) {
				for _, g := range benchGoroutines() {
					b.Run(goroutinesName(g), func(b *testing.B) {
						g := resolveGoroutines(g)
						b.ReportAllocs()
						c := newPaddedSlots(g)
						mine := make([]contend.Counter, g) // boxed before the timer starts
						for id := range mine {
							mine[id] = c.slot(id)
						}
						sink += runParallel(b, g, func(id, n int) int64 { return w.run(mine[id], n) })
						sink += c.Load()
						reportPerSecond(b, float64(b.N), "ops/s")
					})
				}
			})
		})
	}
}

// paddedSlot is one goroutine's slot, alone on 128 bytes: two 64-byte cache
// lines, because the x86 adjacent-line prefetcher pulls lines in pairs, and
// the arm64 line is 128 bytes.
type paddedSlot struct {
	n atomic.Int64
	_ [128 - 8]byte
}

// paddedSlots is the physical floor of a sharded counter, for benchmarks
// only: goroutine id owns slot id outright, so an Add is an uncontended
// atomic add on a line no other goroutine writes. A real sharded counter
// cannot know which goroutine calls it, and pays to find a slot.
//
// Load sums every slot (one per goroutine), as a sharded counter's Load
// sums its shards; with 100 goroutines that is 100 loads, so for the
// read-mostly workload at 100 goroutines it is not a floor for Load.
type paddedSlots struct {
	slots []paddedSlot
}

func newPaddedSlots(g int) *paddedSlots { return &paddedSlots{slots: make([]paddedSlot, g)} }

// slot returns a Counter whose Add goes to slot id and whose Load sums all.
func (p *paddedSlots) slot(id int) contend.Counter { return slotCounter{p, &p.slots[id]} }

// Load sums the slots.
func (p *paddedSlots) Load() int64 {
	var s int64
	for i := range p.slots {
		s += p.slots[i].n.Load()
	}
	return s
}

type slotCounter struct {
	all  *paddedSlots
	mine *paddedSlot
}

func (c slotCounter) Add(d int64) { c.mine.n.Add(d) }
func (c slotCounter) Load() int64 { return c.all.Load() }
