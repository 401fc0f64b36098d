package contend

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a source of monotonic time for token buckets.
//
// Now returns nanoseconds on an arbitrary, fixed origin. Successive calls
// never return a smaller value. Only differences between readings are
// meaningful, and a difference must fit in an int64 (about 292 years).
type Clock interface {
	Now() int64
}

// DefaultClock is the clock a BucketConfig with a nil Clock uses.
var DefaultClock Clock = MonotonicClock{}

// processStart carries a monotonic reading taken when the package was
// initialised; MonotonicClock measures from it.
var processStart = time.Now()

// MonotonicClock reads the operating system's monotonic clock, in
// nanoseconds since the process started. It is the default Clock.
// Wall-clock steps (NTP, a changed date) never move it. Cost: one vDSO
// clock_gettime(CLOCK_MONOTONIC), without the wall-clock read that
// time.Now() adds (BenchmarkFloor/workload=clock-read).
//
// Inside a testing/synctest bubble it follows the bubble's fake clock
// instead, so a bucket created in a bubble refills as the bubble's time
// advances. Readings taken inside a bubble are negative (the fake clock
// starts in the year 2000), still never decrease, and must not be mixed with
// readings taken outside it.
type MonotonicClock struct{}

// Now returns the nanoseconds elapsed since the process started.
func (MonotonicClock) Now() int64 {
	// Why time.Since and not something cheaper: on a reading with a monotonic
	// component the standard library serves it from the runtime's nanotime
	// alone, so it costs little more than runtime.nanotime and less than
	// time.Now (BenchmarkFloor/workload=clock-read measures all three, and
	// make bench-check holds Now to no more than time.Now), and unlike
	// runtime.nanotime it follows a synctest bubble's fake time, which the
	// Clock contract requires. A coarse clock (an atomic word a background
	// goroutine refreshes every millisecond) reads faster but is stale by up
	// to its period, so a bucket on it would under-grant by up to Rate ×
	// period, a bound no configuration controls; the lab rejects it.
	return int64(time.Since(processStart))
}

// ManualClock is a Clock that moves only when told to. Tests and users
// advance it by hand to make a bucket's behaviour deterministic. It is safe
// for concurrent use. Its zero value reads 0. It is a Sleeper: a bucket's
// Wait on it returns when Advance or Set moves it to the tokens' due time.
type ManualClock struct {
	ns atomic.Int64
	// Sleepers: registered under mu; n counts them (and those about to
	// register) so that Advance and Set take mu only when someone sleeps.
	n        atomic.Int64
	mu       sync.Mutex
	sleepers map[chan struct{}]int64 // wake-up channel -> reading awaited
}

// NewManualClock returns a ManualClock that reads start.
func NewManualClock(start int64) *ManualClock {
	c := new(ManualClock)
	c.ns.Store(start)
	return c
}

// Now returns the clock's current reading.
func (c *ManualClock) Now() int64 { return c.ns.Load() }

// Advance moves the clock forward by d and reports whether it moved.
// A ManualClock never moves backwards: a negative d changes nothing and
// returns false. The reading saturates at math.MaxInt64 instead of wrapping.
func (c *ManualClock) Advance(d time.Duration) bool {
	if d < 0 {
		return false
	}
	for {
		old := c.ns.Load()
		next := old + int64(d)
		if next < old { // overflow
			next = math.MaxInt64
		}
		if c.ns.CompareAndSwap(old, next) {
			c.wake()
			return true
		}
	}
}

// Set moves the clock to t and reports whether it moved. Setting a reading
// smaller than the current one changes nothing and returns false.
func (c *ManualClock) Set(t int64) bool {
	for {
		old := c.ns.Load()
		if t < old {
			return false
		}
		if c.ns.CompareAndSwap(old, t) {
			c.wake()
			return true
		}
	}
}

// SleepUntil blocks until the clock reads at least t, and returns nil, or
// until ctx is done, and returns ctx.Err().
func (c *ManualClock) SleepUntil(ctx context.Context, t int64) error {
	// Count ourselves before reading the clock, and Advance reads the
	// count after moving it (both sequentially consistent): either we see
	// the new reading, or Advance sees us and wakes us.
	c.n.Add(1)
	defer c.n.Add(-1)
	c.mu.Lock()
	if c.ns.Load() >= t {
		c.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if c.sleepers == nil {
		c.sleepers = make(map[chan struct{}]int64)
	}
	c.sleepers[ch] = t
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		_, asleep := c.sleepers[ch]
		delete(c.sleepers, ch)
		c.mu.Unlock()
		if !asleep { // woken meanwhile: the reading came first
			return nil
		}
		return ctx.Err()
	}
}

// wake releases the sleepers whose reading has come.
func (c *ManualClock) wake() {
	if c.n.Load() == 0 {
		return
	}
	c.mu.Lock()
	now := c.ns.Load()
	for ch, t := range c.sleepers {
		if now >= t {
			close(ch)
			delete(c.sleepers, ch)
		}
	}
	c.mu.Unlock()
}
