// Package antipattern keeps token buckets that are written the way the seed
// article warns against, and one flawed design of the lab's own past. Each
// is free of data races (clean under go test -race) and validates its
// configuration like the lab's real buckets, yet is WRONG by design, in
// exactly the way its documentation states. The harness registers them as
// Broken and demonstrates each failure; nothing should use them to limit
// anything.
//
//   - PerGoroutineBucket: a private bucket per goroutine ("thread-local"
//     state). There is no shared limit: N goroutines get up to N times it.
//   - WallClockBucket: refills from the wall clock, which NTP or an
//     administrator can step. Both directions of step over-grant.
//   - FloatBucket: float64 tokens and float64 nanosecond time, which round
//     once readings or token counts pass 2^53: it over- and under-grants.
//   - GridBucket: tokens due on a grid fixed at construction, as the lab's
//     own buckets once were. A full bucket keeps its partial token, so a
//     window can hold one token more than Capacity + Rate × W.
//
// # The wall clock's steps
//
// WallClockBucket is written the way the article's bucket is (tokens +=
// (now-last) × rate; last = now), in the lab's exact integer arithmetic so
// that the clock is the only thing wrong. With a wall clock that never
// steps it is exactly the lab's mutex bucket: the sum of the differences is
// now - start. But the wall clock can step (NTP, an administrator, a VM
// restored from a snapshot):
//
//   - A forward step of d adds d to the elapsed time at once: the bucket
//     earns Rate × d tokens that no real time paid for, and refills to
//     Capacity if Rate × d >= Capacity. A +1 h step on a drained bucket of
//     Capacity 100 at 1000/s grants 100 tokens at once although 0 s passed:
//     Capacity more than Capacity + Rate × elapsed allows.
//   - A backward step is ignored (the difference is negative) and moves the
//     last reading back with the clock, so the bucket goes on earning at the
//     real rate. But the forward step that corrects it is counted like any
//     other: steps that cancel out on the wall clock do not cancel in the
//     bucket. A -1 h step followed by a +1 h correction, both within the
//     same instant of real time, refill a drained bucket to Capacity. (Had
//     it computed elapsed as now - start, the pair would cancel, and the
//     backward step would only starve the bucket for an hour.)
//
// The lab's buckets are immune to both: they read a monotonic clock, and
// their state holds no time, so a reading that goes backwards only delays.
//
// # Floating point's 53 bits
//
// FloatBucket is the textbook bucket in float64, under a mutex:
//
//	now := float64(clock.Now())                         // ns
//	tokens = min(capacity, tokens + (now-last)*rate)    // rate in tokens/ns
//	last = now
//	if tokens >= n { tokens -= n; grant }
//
// While clock readings and token counts stay below 2^53 it is close to
// exact. Beyond:
//
//   - Clock readings above 2^53 ns (104 days of uptime on a monotonic clock;
//     every Unix time in nanoseconds, about 1.7e18) are rounded to a
//     multiple of their ulp, 256 ns at 1.7e18, before anything subtracts
//     them. Elapsed time is then wrong by up to one ulp, either way: tokens
//     come up to 256 ns early (over-grant) or late (under-grant), and at
//     high rates 256 ns is many tokens. For instance, Capacity 256 at 1e9
//     tokens/s on a clock starting at 1_700_000_000_000_000_127 ns (which
//     rounds down to 1.7e18): drain 256, advance the clock 2 ns to ...129
//     (which rounds up to 1.7e18 + 256), and the bucket sees 256 ns pass
//     and grants 256 more: 512 tokens granted where Capacity + Rate ×
//     elapsed = 256 + 2 = 258 are allowed. The lab's buckets compute on the
//     integer readings and grant 258.
//   - Token counts above 2^53 are rounded too: with Capacity 2^54, tokens -
//     1 rounds back to tokens, so TryTake(1) at a frozen clock succeeds
//     forever; and a request n is rounded to float64(n) before it is
//     subtracted (2^61 + 255 tokens cost 2^61).
package antipattern

import (
	"runtime"
)

// goid returns the current goroutine's id, parsed from the first line of
// runtime.Stack ("goroutine 123 [running]:"). This is what a naive author
// writes to get "thread-local" state in Go, which deliberately has none.
//
// It is race-free but slow: runtime.Stack stops nothing, but formats the
// header for the calling goroutine, and the 64-byte buffer escapes to the
// heap. It returns 0 if the header cannot be parsed, which runtime.Stack's
// documented format rules out.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
