package pershard

import (
	"sync/atomic"
	"unsafe"
)

// hintTableBits sizes hintTable: 2^11 entries of 4 bytes, 8 KiB.
const hintTableBits = 11

// hintTable caches each goroutine's shard hint (shardHint's CPU number or P
// id) so that the hot path reads it with one load instead of a call. A
// goroutine's entry is chosen by its stack address: the 2 KiB granule (the
// smallest goroutine stack) its current frame lies in, modulo the table
// size. Goroutines alive at the same time have disjoint stacks, so those
// whose current frames lie in different granules of one 4 MiB span get
// distinct entries. (With larger stacks, as adaptive initial stack sizes or
// the race detector give, fewer fit, and one goroutine may map to another
// entry at another call depth; each entry is refreshed on its own.)
//
// Entries are hints, like shardHint's result, and may be wrong in every
// way without harming correctness: a goroutine that migrated, one whose
// stack moved when it grew, one that inherited a dead goroutine's stack, or
// two goroutines whose stacks alias in the table all read a stale entry and
// update a stripe another CPU also uses (a shared cache line, never a lost
// update: the update itself is atomic). A stale entry is corrected by
// refreshHint, which the hot path calls on about one update in 64
// (refreshDue); it writes only when the entry changed, so in the steady
// state the table is read-only and each CPU keeps its lines in cache.
var hintTable [1 << hintTableBits]atomic.Uint32

// hintEntry returns the calling goroutine's entry in hintTable, from the
// address of a variable on its stack (any address on the goroutine's stack
// would do, hintEntry's own frame included). It is small enough to be
// inlined, which matters only for its cost.
func hintEntry() *atomic.Uint32 {
	var anchor byte
	return &hintTable[(uintptr(unsafe.Pointer(&anchor))>>11)&(1<<hintTableBits-1)]
}

// refreshDue reports whether an update that left its word at x should
// refresh its hint: the top six bits of a multiplicative (Fibonacci) hash
// of x are zero. The top bits of the product depend on every bit of x, so
// as x moves from one update to the next about one update in 64
// refreshes, whichever goroutine makes it and whatever the delta. Values
// that repeat with a short period (Add(0), or Add(1<<60), which wraps every
// 16 updates) may refresh every time or never: slower or staler, never
// wrong.
func refreshDue(x uint64) bool {
	return x*0x9E3779B97F4A7C15>>58 == 0
}

// refreshHint stores the calling goroutine's current shard hint in e,
// writing only when it changed.
//
//go:noinline
func refreshHint(e *atomic.Uint32) {
	if h := uint32(shardHint()); e.Load() != h {
		e.Store(h)
	}
}
