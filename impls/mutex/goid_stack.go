package mutex

import "runtime"

// stackGoroutineID identifies the calling goroutine by the number in the
// first line of runtime.Stack ("goroutine 123 [running]:"), which is never
// 0. It formats a stack header and allocates the 64-byte buffer, which
// escapes into runtime.Stack (BenchmarkGoroutineID): the portable fallback
// where getg has no assembly.
func stackGoroutineID() uintptr {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	var id uintptr
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uintptr(c-'0')
	}
	return id
}
