// Package contend holds the contracts of the contend laboratory: the shapes
// that every synchronisation strategy implements, so that one harness can
// test, stress and benchmark them all alike, and so that a user can swap
// one for another.
//
// The implementations, and what each guarantees (the report's "What to
// use" says which to pick, from measurements):
//
//	Counter    impls/cas.Counter (exact, wait-free; zero value ready),
//	           impls/pershard.Counter (no update lost; Load not linearizable)
//	Limiter    impls/cas.NewBucket (exact textbook token bucket, lock-free),
//	           impls/mutex.NewBucket, impls/rwmutex.NewBucket (exact, locked);
//	           impls/pershard.NewBucket is a Bucket, approximate within a stated bound
//	per key    keyed.New[K] (an exact bucket per key, idle keys forgotten)
//	Lock       impls/mutex.Lock (zero value ready), impls/channel and
//	           impls/ticket (FIFO), impls/spin
//	Semaphore  impls/cas.NewSemaphore, impls/channel.NewSemaphore (FIFO)
//	remote     remote/redislab, remote/zklab, remote/etcdlab: locks and
//	           semaphores with fencing tokens; remote/redislab.NewBucket
//
// The package itself is small: interfaces, the clock, the token bucket's
// configuration and the errors. The checks that hold an implementation to
// these contracts are exported by package contendtest.
//
// # Waiting for tokens, and golang.org/x/time/rate
//
// [Limiter] follows x/time/rate's Limiter (Reserve, Delay, Cancel, Wait)
// where that is sound for an exact bucket. Where the lab differs, and why:
//
//   - Time is the bucket's own Clock, read inside the bucket's
//     synchronisation: there are no AllowN(t)/ReserveN(t) forms, because
//     a caller's reading can be stale by the time the bucket decides, and
//     the order of readings is what makes a bucket exact.
//   - Reservation.Cancel gives the tokens back exactly, when nothing was
//     booked or granted after them, or not at all; x/time/rate gives back n
//     minus the tokens reserved after, which cannot be made exact without
//     remembering every later booking. Cancel reports which it did.
//   - A request that can never succeed is an error (*TokenError), not a
//     Reservation whose OK is false; Wait's refusal for a deadline it
//     cannot meet is a *DeadlineError that wraps
//     context.DeadlineExceeded and carries the Delay (a Retry-After).
//   - Tokens is a whole number (int64), negative while owed.
//   - No SetLimit/SetBurst: the state is counted in units of the rate, so
//     a change must convert the state and swap the rate in one atomic
//     step. A lock-free bucket's state is one 64-bit word, which cannot
//     also hold the rate, and an immutable (rate, state) pair swapped by
//     pointer would allocate on every grant; a locked bucket could do it
//     for free, but only it, which would split the contract. Make a new
//     bucket instead.
//   - Bookings reach at most the bucket's range (146 years from its
//     construction, refill.Limit.MaxElapsed).
package contend

import (
	"context"
	"fmt"
	"time"
)

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

// Limiter is a Bucket a server can use: it also tells how long until n
// tokens are due (for a Retry-After header), books tokens ahead of time
// (Reserve), and blocks until they are due (Wait), as
// golang.org/x/time/rate's Limiter does. The exact buckets of impls/cas,
// impls/mutex (both) and impls/rwmutex implement it; keyed offers it per
// key.
//
// Bookings are served in the order they are made: Reserve and Wait book
// their tokens at once, even when they are due only later, and every later
// request, TryTake or Wait, large or small, comes after them. A waiting
// large request therefore cannot be starved by small ones; the price is
// that it holds back the small ones behind it. While bookings are
// outstanding the bucket owes tokens, and Tokens is negative.
//
// A booking for tokens due at time d is, for the bucket's guarantee, a
// grant at d: an exact Limiter's grants and bookings, each counted at the
// time it takes effect, are the textbook bucket's (over any window of W at
// most Capacity + Rate × W), provided the holders act no earlier than told.
type Limiter interface {
	Bucket
	// Capacity returns the most tokens the bucket holds (0 for a zero value).
	Capacity() int64
	// Rate returns the refill rate in tokens per second, as configured.
	Rate() float64
	// Tokens returns the whole tokens available now: TryTake(n) would be
	// granted for any n up to it. It is negative while bookings owe more
	// than the bucket holds.
	Tokens() int64
	// Delay returns how long from now until n tokens are due, without
	// taking them: 0 if TryTake(n) would be granted now. n <= 0 or
	// n > Capacity is a *TokenError.
	Delay(n int64) (time.Duration, error)
	// Reserve books n tokens, due now or later, and returns the booking:
	// its Delay says when to act. n <= 0 or n > Capacity is a *TokenError.
	Reserve(n int64) (Reservation, error)
	// Wait books n tokens and blocks, on a timer, until they are due. It
	// returns at once with a *TokenError for n <= 0 or n > Capacity, with
	// ctx.Err() (wrapped) if ctx is done already, and with a
	// *DeadlineError, booking nothing, if the tokens are due after ctx's
	// deadline. If ctx ends before they are due, Wait cancels the booking
	// (as Reservation.Cancel does) and returns ctx.Err(), wrapped; if they
	// are due by the time it notices, it returns nil: they are the caller's.
	Wait(ctx context.Context, n int64) error
}

// Reservation is tokens booked by Limiter.Reserve.
type Reservation interface {
	// Delay returns how long from now until the tokens are due; 0 once
	// they are.
	Delay() time.Duration
	// Cancel gives the tokens back, if they are not yet due and nothing
	// was booked or granted after them, and reports whether it did. Then
	// the bucket is exactly as if they had never been booked. Otherwise it
	// changes nothing: later bookings were promised times that count these
	// tokens as spent. Only the first call can give them back.
	Cancel() bool
}

// TokenError reports a bucket request for a number of tokens that can
// never be granted: n <= 0, or n > Capacity.
type TokenError struct {
	N, Capacity int64
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("contend: cannot take %d tokens from a bucket of capacity %d: must be between 1 and the capacity", e.N, e.Capacity)
}

// DeadlineError reports a Wait refused at once, booking nothing, because
// the tokens are due after the context's deadline. It wraps
// context.DeadlineExceeded, and Delay is a Retry-After.
type DeadlineError struct {
	N     int64
	Delay time.Duration // how long until the tokens are due
	Left  time.Duration // how long the context had left
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("contend: %d tokens are due in %v, after the context's deadline in %v", e.N, e.Delay, e.Left)
}

// Unwrap returns context.DeadlineExceeded.
func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// Sleeper is a Clock that can block until it reads a given time. A bucket
// waits on its Clock's SleepUntil when it has one (ManualClock does); on
// any other Clock, DefaultClock included, it sleeps on the runtime's
// timers, taking the Clock's nanoseconds for real ones.
type Sleeper interface {
	Clock
	// SleepUntil blocks until Now() >= t, and returns nil, or until ctx is
	// done, and returns ctx.Err().
	SleepUntil(ctx context.Context, t int64) error
}
