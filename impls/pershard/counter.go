package pershard

import "sync/atomic"

// stripe is one counter slot: a hot word padded to padSize bytes.
type stripe struct {
	n atomic.Int64
	_ [padSize - 8]byte
}

// Counter is a contend.Counter striped per P: Add updates the calling P's
// stripe, Load sums all stripes.
//
// Guarantees:
//   - No lost update: every Add is one atomic add on some stripe, and the
//     sum of the stripes is the sum of all deltas that have been applied.
//     Once every Add has returned (and the caller has synchronised with
//     them, e.g. by sync.WaitGroup), Load returns the exact sum.
//   - While Adds run, Load is not linearizable: it reads the stripes one
//     after another, so it may count an Add that started after one it
//     missed, and return a sum that the counter never held at any single
//     instant (with mixed-sign deltas it may even lie outside the range of
//     values the counter went through). It is the same contract as
//     xsync.Counter's Value. Each stripe's value is exact, so Load is within
//     the deltas of the Adds concurrent with it.
//   - Overflow wraps around per stripe, and the wrapped sum is the wrapped
//     total, as int64 addition is modular.
//
// Cost: Add is one load of the goroutine's cached slot hint (no call; see
// "Caching the hint" in the package documentation), one uncontended LOCK
// XADD on a line that, in the common case, only this CPU writes, and on
// about one Add in 64 a refresh of the hint (RDPID, or a procPin/procUnpin
// pair). At 100 goroutines and GOMAXPROCS 2 here that is 1.5 to 2.3 times
// the cost of an add on a padded slot the goroutine owns outright,
// depending on the run. With one
// stripe (GOMAXPROCS 1 at construction) Add skips the hint. Load costs one
// atomic load per stripe: the number of stripes is GOMAXPROCS at
// construction rounded up to a power of two, so Load is O(GOMAXPROCS) and
// pulls that many lines; counters that are read as often as written are
// better served by a single atomic word. Neither allocates. The hint table
// is one 8 KiB array shared by every Counter in the process.
//
// Memory: 128 bytes per stripe, plus a 128-byte header holding the stripe
// slice and mask, padded so that no other object shares its block: every
// Add reads it, and a neighbour written by another core would make every
// Add miss (measured here: 12 ns/op instead of 3.2 at GOMAXPROCS 2, with
// the benchmark's own per-goroutine state next to an unpadded header).
// See the package documentation for the stripes' layout.
type Counter struct {
	mask uint64 // len(stripes) - 1; 0 with one stripe
	// single is the one stripe when there is one (stripes is then nil): it
	// shares the header's line, so that Add reads one line and writes it.
	// With one stripe every Add goes to the same word anyway, so nothing is
	// gained by keeping it apart.
	single  atomic.Int64
	stripes []stripe // len is a power of two (at least 2); never changes
	_       [padSize - 40]byte
}

// NewCounter returns a zero Counter with one stripe per P: GOMAXPROCS, read
// now, rounded up to a power of two (at most 1024). If GOMAXPROCS grows
// later, Ps share stripes (still exact, a little more contention).
func NewCounter() *Counter {
	n := currentSlots()
	if n == 1 {
		return &Counter{}
	}
	return &Counter{stripes: make([]stripe, n), mask: uint64(n - 1)}
}

// Add adds delta to the counter. With one stripe (GOMAXPROCS 1 at
// construction) there is nothing to choose, and Add is one atomic add, as
// cheap as a single shared word. Otherwise it adds to the stripe its cached
// hint names, and refreshes the hint when the stripe's new value says so
// (refreshDue: about one Add in 64).
func (c *Counter) Add(delta int64) {
	if c.mask == 0 {
		c.single.Add(delta)
		return
	}
	e := hintEntry()
	sum := c.stripes[uint64(e.Load())&c.mask].n.Add(delta)
	if refreshDue(uint64(sum)) {
		refreshHint(e)
	}
}

// stripeCount returns the number of stripes: 1 (single) or len(stripes).
func (c *Counter) stripeCount() int { return max(1, len(c.stripes)) }

// Load returns the sum of the stripes. It is exact when no Add runs
// concurrently; see Counter for what it returns otherwise.
func (c *Counter) Load() int64 {
	sum := c.single.Load()
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}
