// Package antipattern keeps token buckets that are written the way the seed
// article warns against, and one flawed design of the lab's own past. Each is free of data races (clean under
// go test -race) and validates its configuration like the lab's real
// buckets, yet is WRONG by design, in exactly the way its documentation
// states. The harness registers them as Broken and demonstrates each
// failure; nothing should use them to limit anything.
//
//   - PerGoroutineBucket: a private bucket per goroutine ("thread-local"
//     state). There is no shared limit: N goroutines get up to N times it.
//   - WallClockBucket: refills from the wall clock, time.Now().UnixNano(),
//     which NTP or an administrator can step. A forward step refills the
//     bucket at once; a backward step followed by the clock running on makes
//     it count the same time twice. Both over-grant.
//   - FloatBucket: float64 tokens and float64 nanosecond time. Above 2^53 ns
//     (104 days of uptime, and every Unix time) a float64 cannot hold a
//     clock reading to the nanosecond, so elapsed time is rounded by up to
//     half an ulp (128 ns at 1.7e18) at each end: it over- and under-grants.
//   - GridBucket: tokens due on a grid fixed at construction, as the lab's
//     own buckets once were. A full bucket keeps its partial token, so a
//     window can hold one token more than Capacity + Rate × W.
package antipattern

import (
	"runtime"
)

// goid returns the current goroutine's id, parsed from the first line of
// runtime.Stack ("goroutine 123 [running]:"). This is what a naive author
// writes to get "thread-local" state in Go, which deliberately has none.
//
// It is race-free but slow: runtime.Stack stops nothing, but formats the
// header for the calling goroutine (about 3 µs and a 64-byte allocation). It returns 0 if the
// header cannot be parsed, which runtime.Stack's documented format rules out.
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
