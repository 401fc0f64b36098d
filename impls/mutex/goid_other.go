//go:build !amd64 && !arm64

package mutex

// goroutineID identifies the calling goroutine; it is never 0. See
// ReentrantMutex for what it costs.
func goroutineID() uintptr { return stackGoroutineID() }
