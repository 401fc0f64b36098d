package pershard

import "sync/atomic"

// stripe is one counter slot: a hot word padded to padSize bytes.
type stripe struct {
	n atomic.Int64
	_ [padSize - 8]byte
}

// Counter is a [contend.Counter] striped per P: Add updates a stripe near
// the calling CPU, Load sums all stripes. The zero Counter is a working
// counter with one stripe; NewCounter makes one stripe per P.
//
//   - No update is ever lost, and once every Add has returned (and the
//     caller has synchronised with them, e.g. by sync.WaitGroup) Load is
//     exact. Overflow wraps, as int64 addition does.
//   - While Adds run, Load is not linearizable, as xsync.Counter's Value
//     is not: it reads the stripes one after another, so it may return a
//     sum the counter never held (even outside the range it went through,
//     with mixed-sign deltas); it is off by at most the deltas of the Adds
//     concurrent with it.
//
// Cost: Add is one load of a cached slot hint and one atomic add on a line
// that, in the common case, only this CPU writes; about one Add in 64 also
// refreshes the hint (see the package documentation, and BenchmarkCounter).
// Load is one atomic load per stripe, O(GOMAXPROCS): a counter read as
// often as it is written is better served by one atomic word. Neither
// allocates. Memory: a 128-byte header plus 128 bytes per stripe, and one
// 8 KiB hint table shared by every Counter in the process.
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

// Load returns the sum of the stripes. It is exact when no Add runs
// concurrently; see Counter for what it returns otherwise.
func (c *Counter) Load() int64 {
	sum := c.single.Load()
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}
