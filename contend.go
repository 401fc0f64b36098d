// Package contend holds the contracts of the contend laboratory: the shapes
// that every synchronisation strategy in impls/ implements, so that one
// harness (package harness) can test, stress and benchmark them all alike.
//
// The package is deliberately small: interfaces, the clock, and the token
// bucket's configuration. The integer fixed-point arithmetic that the lab's
// own buckets share lives in package refill.
package contend

// Counter is a shared signed 64-bit counter.
//
// A correct Counter never loses an update: once every Add has returned,
// Load returns the exact sum of all deltas. Implementations document what
// Load returns while Adds are still running (linearizable, or a sum of
// shards that may not correspond to any single instant).
//
// Overflow wraps around, as int64 addition does in Go.
type Counter interface {
	// Add adds delta (which may be negative) to the counter.
	Add(delta int64)
	// Load returns the counter's value.
	Load() int64
}

// Bucket is a token bucket: it holds at most Capacity tokens, starts full,
// and earns Rate tokens per second of its Clock, up to Capacity.
//
// An exact Bucket makes the textbook bucket's decisions (package textbook)
// in the order they take effect: over any window of W it grants at most
// Capacity + Rate × W, whatever the number of goroutines calling it. An
// approximate one states how far over that a window may go; every correct
// Bucket grants at most Capacity + Rate × elapsed since its construction.
type Bucket interface {
	// TryTake takes n tokens at once, or none. It never waits. It reports
	// whether the tokens were taken.
	//
	// A request that can never succeed — n <= 0 or n > Capacity — returns
	// false and changes nothing.
	TryTake(n int64) bool
}
