// Package pershard spreads a shared counter and a token bucket over one
// padded slot per P (the runtime's processors, GOMAXPROCS of them), so that
// goroutines running on different cores update different cache lines.
//
//   - [Counter]: Add is one atomic add on a stripe near the calling CPU, and
//     no update is ever lost; Load sums the stripes, exact once the Adds it
//     should count have returned.
//   - [Bucket]: a token bucket whose common TryTake takes from the calling
//     P's cache of tokens without touching a shared word or reading the
//     clock. It never over-grants, and under-grants by a bounded amount.
//
// Both pay for their speed in memory (128 bytes per slot) and in what a
// read costs: for a word that is rarely contended, or read as often as it
// is written, impls/cas is the better choice.
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
// instruction, cheaper than the procPin/procUnpin pair (BenchmarkSlotChoice
// compares the two). A CPU number is as good a hint as a P id, better even:
// it is the cache the slot should live in. The same argument makes it safe:
// it is only a hint, and the update is atomic. CPU numbers are masked like
// P ids, so on a machine with more CPUs than slots, or whose affinity mask
// leaves gaps, two running threads may share a slot: more contention, never
// an error.
//
// # Caching the hint: the counter's Add
//
// Reading the CPU number costs a call (Go cannot inline assembly), and that
// call is most of what separates a sharded Add from an add on a slot the
// goroutine owns outright. Counter.Add therefore reads the hint from
// hintTable (hint.go): one entry per goroutine, found from the goroutine's
// stack address with no call, filled in by shardHint on about one Add in 64
// and rewritten only when it changed. A migrated goroutine updates its old
// CPU's stripe until its next refresh, about 64 Adds later: a shared cache
// line for that long, never a wrong count. BenchmarkSlotChoice measures the
// choice on its own (choice=stack-table against choice=rdpid), and the
// harness's BenchmarkCounter the whole Add. The bucket keeps the call: its
// common path is a compare-and-swap, which the cached hint, when tried,
// did not measurably speed up.
//
// # The bucket: per-P caches in front of one word
//
// Bucket's global state is the one word of impls/cas.Bucket: the bucket's
// theoretical arrival time, decided by package refill and updated by
// compare-and-swap. In front of it, each P has a padded cache of tokens
// already taken from the global word. TryTake(n) for n <= B (the batch
// size, below) first takes n from the calling P's cache with one CAS on a
// line only that P normally writes: no clock read, no shared word. When the
// cache holds v < n tokens, the goroutine reads the clock and, with one CAS
// on the global word, takes a batch of n + B - v tokens if the global word
// holds that many, or else exactly n. It keeps n; the rest goes into the
// cache, which it claims first (the refilling flag) and releases in the
// same atomic add that deposits. A goroutine that finds the flag set, or
// asks for more than B, goes to the global word for exactly n, as
// impls/cas does. When the global word cannot supply n, it looks for a
// cache holding n (its own last) and takes from it ("steals") before
// denying.
//
// S, the number of caches, is GOMAXPROCS at construction rounded up to a
// power of two (at most 1024); B = clamp(Capacity / (4S), 1, 64), so the
// caches together hold at most a quarter of Capacity when Capacity >= 4S.
// With Capacity < 4S (even Capacity < S) B is 1 and the caches may
// together hold up to S tokens: the bucket still works and still never
// over-grants, but then the under-grant and burst excess can exceed
// Capacity; such buckets are better served by impls/cas.
//
// # The bucket's bounds
//
//   - Never over-grants: every token it grants was first counted by the
//     global word (whose updates are the exact bucket's), and each cached
//     token is granted at most once: every cache update is an atomic CAS or
//     add, tokens enter a cache only from a successful global CAS, and
//     nothing is ever put back.
//   - Bounded under-grant: each cache holds at most B tokens at any time (a
//     deposit goes only into a cache its depositor has claimed, and tops it
//     up to at most B), so at most S × B tokens are counted as consumed by
//     the global word and not yet granted. Hence, when demand keeps the
//     global word from filling up (so it forfeits nothing), at any moment
//     when no TryTake is running:
//     granted = Capacity + Earned − (held by the global word) − (cached)
//     >= Capacity + Earned − (held by the global word) − S × B, where an
//     exact bucket's grants are the same expression without the cached
//     term. A request may be denied while another P's cache holds tokens if
//     none holds all n (a steal never gathers from several caches); those
//     tokens are not lost, later requests get them.
//   - Windows: the global word is the textbook bucket (it reads the clock
//     after loading the word, as impls/cas does), and what the caches held
//     when a window opened comes on top. A cache filled before an idle
//     period keeps its tokens, so the first burst after the global word
//     refills can reach Capacity + S × B, not Capacity.
//   - Not linearizable: two requests can be decided against different
//     caches, so there is no single order in which an exact bucket would
//     have made the same decisions.
//   - A denied request never writes the global word; it writes nothing at
//     all unless it lost a race for the global word after claiming its
//     cache (then it clears the flag it set).
//   - Lock-free: nobody waits on the refilling flag (it only diverts other
//     requests to the global word), and every retried CAS failed because
//     another request changed the word, so some request always completes.
//   - No overflow for MaxElapsed (about 292 years), as impls/cas.
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
//
// The objects themselves are padded too. A Bucket is two 128-byte blocks:
// first the fields every request reads and nobody writes after
// construction, then the global word alone, so that a refill writing the
// global word never invalidates the line the common path reads; the
// 256-byte object comes from the allocator's 256-byte size class, so in
// practice it is 128-byte aligned and shares no block with a neighbour. A
// Counter's 128-byte header (the stripe slice and mask) is padded for the
// same reason: every Add reads it, and a neighbour written by another core
// would make every Add miss.
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
