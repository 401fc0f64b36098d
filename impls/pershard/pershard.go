// Package pershard spreads a shared counter and a token bucket over one
// padded slot per P (the runtime's processors, GOMAXPROCS of them), so that
// goroutines running on different cores update different cache lines.
//
// # Choosing a slot: the P id
//
// A goroutine finds its slot with the id of the P it is running on, read by
// runtime.procPin, which the package reaches through //go:linkname. The
// runtime keeps procPin and procUnpin linkable on purpose (go.dev/issue/67401:
// "Do not remove or change the type signature"), so this builds without
// -ldflags=-checklinkname=0. Pinning disables preemption; we pin only for
// the instant it takes to read the id, and unpin before touching any slot:
//
//	pid := procPin()
//	procUnpin()
//	slot := &slots[pid&mask] // the goroutine may already be on another P
//
// That is safe because the id is only a hint for spreading the load. Every
// update of a slot is an atomic instruction that is correct whichever
// goroutine on whichever P executes it. If the goroutine migrates between
// procUnpin and the atomic, two Ps share one slot for a moment: that costs a
// cache-line transfer, never correctness. The same holds when GOMAXPROCS
// grows after construction: the slot count stays fixed, the ids wrap with
// the mask, and the Ps that wrap share slots.
//
// # Choosing a slot: the CPU number, where RDPID has it
//
// On amd64 Linux, when the CPU has the RDPID instruction, the hint is the
// number of the CPU the thread is running on instead (shardHint, cpu_amd64.s):
// RDPID reads it from IA32_TSC_AUX, where Linux keeps it, in one
// instruction; with the call, 2.7 ns here against 5.4 ns for the
// procPin/procUnpin pair (measured with go test -bench on this machine). A
// CPU number is as good a hint as a P id, better even: it is the cache the
// slot should live in. The same argument makes it safe: it is only a hint,
// and the update is atomic. CPU numbers are masked like P ids, so on a
// machine with more CPUs than slots, or whose affinity mask leaves gaps,
// two running threads may share a slot: more contention, never an error.
//
// # Caching the hint: the counter's Add
//
// Reading the CPU number costs a call (Go cannot inline assembly), and on
// this machine that call is most of what separates a sharded Add from an
// add on a slot the goroutine owns outright. Counter.Add therefore reads
// the hint from hintTable (hint.go): one entry per goroutine, found from the
// goroutine's stack address with no call, filled in by shardHint on about
// one Add in 64 and rewritten only when it changed. A migrated goroutine
// updates its old CPU's stripe until its next refresh, about 64 Adds later:
// a shared cache line for that long, never a wrong count. Measured with
// the harness's add-only benchmark at 100 goroutines, GOMAXPROCS 2, in
// interleaved runs of the two builds: 15 to 25% faster than a call to RDPID
// on every Add (n=16: 2.87 against 3.37 ns/op; n=8: 2.42 against 3.21;
// both p=0.002). BenchmarkSlotChoice in this package isolates the choice.
// The bucket keeps the call: its common path is a compare-and-swap, which
// the cached hint did not measurably speed up (6.6 ns/op with it, 6.2
// without, p=0.23).
//
// # Padding and layout
//
// Each slot is one 64-bit word followed by 120 bytes of padding: a 128-byte
// stride. internal/cpu.CacheLinePadSize is 64 on amd64, but Intel cores since
// Sandy Bridge run a spatial ("adjacent-line") prefetcher that fetches cache
// lines in 128-byte-aligned pairs, so two hot words 64 bytes apart still
// ping-pong between cores; arm64 (Apple M-series, Neoverse) has 128-byte
// lines outright, and Go pads to 128 there for that reason. With a stride of
// exactly 128 bytes the i-th word lies in 128-byte-aligned block
// floor(base/128)+i, so no two slots' words ever share a line or a line
// pair, whatever the base address. The slots live in one slice whose length
// is a power of two, 128×2^k bytes; the Go allocator serves such sizes from
// a size class of exactly that size (or whole pages), so in practice the
// slice is also 128-byte aligned and the first slot shares its block with
// nothing else. The cost is 128 bytes per slot: 256 bytes per object at
// GOMAXPROCS 2, 1 KiB at 8.
package pershard

import (
	"math/bits"
	"runtime"
	_ "unsafe" // for go:linkname
)

// padSize is the distance between two slots' hot words; see the package
// documentation for why it is 128 and not 64.
const padSize = 128

// maxSlots bounds the number of slots (128 KiB of padding per object) on
// machines with very many Ps; the ids beyond it wrap and share slots.
const maxSlots = 1 << 10

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// pid returns the id of the P the calling goroutine was running on an
// instant ago. The goroutine may have moved since: use it only as a hint.
func pid() uint64 {
	id := procPin()
	procUnpin()
	return uint64(id)
}

// slotCount returns the number of slots for GOMAXPROCS procs: procs rounded
// up to a power of two (so that pid & (n-1) selects a slot), in [1, maxSlots].
func slotCount(procs int) int {
	if procs <= 1 {
		return 1
	}
	if procs >= maxSlots {
		return maxSlots
	}
	return 1 << bits.Len(uint(procs-1))
}

// currentSlots is slotCount for the current GOMAXPROCS.
func currentSlots() int { return slotCount(runtime.GOMAXPROCS(0)) }
