// Package bucketcore is what every token bucket of the lab computes at
// construction and reads on each request, so that the strategies in impls/
// differ only in how they synchronise the one integer of state that
// package refill defines.
//
// It also holds the [contend.Limiter] side of the exact buckets, written once
// over a [Cell]: Tokens, Delay, Reserve, Cancel and Wait. TryTake is not
// here: each strategy keeps its own hot path inline in its package, and
// nothing of the Limiter side is on it.
//
// # Bookings
//
// A reservation of n at reading e, in state tat, is the refill grant of n
// at the reading d = Limit.Due(tat, n) if that is later than e (the tokens
// are due at d), else at e: the state becomes Limit.Granted(tat, max(d, e),
// n). So tat may run ahead of the clock by more than the burst: the bucket
// owes tokens, and every later request, whose reading is before d, is
// denied or booked after d. Counted at the times they take effect, the
// bucket's grants are therefore still one textbook run: each takes effect
// no earlier than the one before it (a request decided after a booking due
// at d is granted at a reading >= d + its own n × T). Bookings are limited
// to the bucket's range: a due time beyond Limit.MaxElapsed is refused,
// which also keeps every state below refill.Retired.
//
// # Cancel: exactly, or not at all
//
// golang.org/x/time/rate's CancelAt gives back n minus the tokens booked
// after the reservation. In this bucket that is safe for one cancellation
// (it never gives back more than removing the booking from the textbook run
// would), but after partial give-backs the bookings' arithmetic no longer
// adds up, and the exact amount depends on the sizes of the later bookings,
// which the bucket does not keep. So the lab gives back all n when the
// booking is the last thing that changed the state (the state still equals
// what the booking stored; every state change after it would have moved it
// forward, except exact cancellations of later bookings), which restores
// the bucket exactly; otherwise it gives back nothing, which only ever
// under-grants, by at most n. Either way only while the tokens are not yet
// due: once they are, the holder may have acted.
package bucketcore

import (
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/refill"
)

// Params is a validated BucketConfig in the form the hot path needs.
// It is immutable after New and safe to share between goroutines.
type Params struct {
	Limit refill.Limit
	Clock contend.Clock
	Start int64 // Clock reading at construction: the bucket starts full here
}

// New validates cfg and reads the clock once, for the bucket's start.
func New(cfg contend.BucketConfig) (Params, error) {
	if err := cfg.Validate(); err != nil {
		return Params{}, err
	}
	l, _ := cfg.Limit() // valid: Validate checked it
	clk := cfg.ClockOrDefault()
	return Params{Limit: l, Clock: clk, Start: clk.Now()}, nil
}

// Possible reports whether a request for n tokens can ever be granted:
// 0 < n <= Capacity. Buckets return false for any other n and change nothing.
func (p *Params) Possible(n int64) bool {
	return n > 0 && uint64(n) <= p.Limit.Capacity()
}

// Elapsed reads the clock and returns the nanoseconds since the bucket
// started, clamped to [0, Limit.MaxElapsed()]. Buckets call it after
// loading their state (inside the lock, or inside the CAS loop), so that
// the order in which decisions take effect is the order of their readings.
func (p *Params) Elapsed() uint64 {
	return p.Limit.Elapsed(p.Start, p.Clock.Now())
}

// TakeWord decides a request for n tokens (0 < n <= Capacity) against the
// state in w, lock-free: it returns true after a CAS recorded the grant, or
// false, writing nothing. impls/cas's bucket and pershard's global word
// use it.
//
// The clock is read after w is loaded, and w is loaded again before the
// CAS, so the reading is outside the window in which another grant makes
// the CAS fail. A denial is decided only on a reading taken while the word
// held the state it refuses on (else a token there throughout the call
// could be refused). A grant may use an older reading, taken within this
// call: after a grant decided on a later reading e', it is the textbook
// bucket's at e' too (it sees fewer tokens than at e', and the state, past
// ceil(e'/u) already, takes no reset from it). So a CAS lost to another
// grant retries on the same reading, and reads the clock again only if the
// retry would deny.
func (p *Params) TakeWord(w *atomic.Uint64, n uint64) bool {
	tat := w.Load()
	e := p.Elapsed()
	fresh := true // e was read after tat was loaded, and w still holds tat
	for {
		if cur := w.Load(); cur != tat {
			tat, fresh = cur, false
		}
		if p.Limit.Denies(tat, e, n) {
			if fresh {
				return false
			}
			e, fresh = p.Elapsed(), true
			continue
		}
		if w.CompareAndSwap(tat, p.Limit.Granted(tat, e, n)) {
			return true
		}
		fresh = false
	}
}

// Capacity returns the bucket's capacity; 0 for the zero Params.
func (p *Params) Capacity() int64 { return int64(p.Limit.Capacity()) }

// Rate returns the configured rate in tokens per second; 0 for the zero
// Params.
func (p *Params) Rate() float64 { return p.Limit.Rate() }

// tokenError is the error for a request that can never be granted.
func (p *Params) tokenError(n int64) error {
	return &contend.TokenError{N: n, Capacity: p.Capacity()}
}
