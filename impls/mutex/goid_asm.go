//go:build amd64 || arm64

package mutex

// getg returns the address of the calling goroutine's runtime g structure
// (goid_amd64.s, goid_arm64.s). It is what the runtime itself uses as the
// goroutine's identity; it stays put for the goroutine's life.
func getg() uintptr

// goroutineID identifies the calling goroutine among live goroutines; it is
// never 0. See the package documentation for when it is reused.
func goroutineID() uintptr { return getg() }
