// Package refill is the integer fixed-point arithmetic that the lab's token
// buckets share: it converts a rate, once, into a Schedule, and then decides
// every request with integer operations only.
//
// # Representation
//
// A bucket's state is one unsigned integer g, the number of tokens it has
// consumed since it was created, counting both the tokens it granted and
// the ones it forfeited while full. By elapsed nanoseconds e after creation
// the bucket has earned E(e) = floor(e / T) tokens, where T = 1e9 / rate is
// the emission interval in nanoseconds. The bucket holds
//
//	tokens(e) = Capacity - (g - E(e))   if g > E(e)
//	tokens(e) = Capacity                 otherwise (full; g catches up to E(e))
//
// Tokens are due on a fixed grid, at k×T after creation. A bucket that is
// full keeps its progress towards the next grid point, where a textbook
// bucket (tokens = min(C, tokens + rate×dt)) throws that partial token away;
// so after a full spell it may grant its next token up to one interval
// sooner than the textbook bucket would. Over any window of time it grants
// at most Capacity + rate × window + 1 tokens (the +1 is that partial
// token), and over the whole run since creation never more than
// Capacity + rate × elapsed.
//
// This is GCRA (the generic cell rate algorithm) counted in tokens instead
// of in time: g × T is GCRA's theoretical arrival time. Counting tokens keeps
// the whole state in one integer that only grows, so a lock-free bucket can
// decide and update with one compare-and-swap, and nothing is ever stored
// about the time: a clock that goes backwards can only delay tokens.
//
// T is held as a 64-bit fixed-point number Interval × 2^-Shift with Shift
// chosen so that Interval lies in [2^62, 2^63]: a relative precision of
// 2^-62 for every representable rate. Interval is the exact rational 1e9/rate
// rounded up, so the schedule never earns a token earlier than the exact rate
// would: rounding can only under-grant, by at most one token in 2^62.
// Rates whose T is an integer number of nanoseconds (10/s, 1000/s, 1e9/s)
// are exact.
//
// # Range
//
// Valid rates are [MinRate, MaxRate]: MaxRate is one token per nanosecond,
// which keeps E(e) <= e; MinRate is one token per 2^62 nanoseconds
// (about 146 years), the largest T the representation holds. Capacity is at
// most MaxCapacity = 2^62. Elapsed time is clamped to MaxElapsed = 2^63-1 ns
// (about 292 years), which with these bounds keeps every intermediate value
// below 2^64: no operation can overflow, however long a bucket sits idle.
package refill

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

const (
	// MaxRate is the largest rate a Schedule represents: one token per
	// nanosecond. Count in larger units (KiB instead of bytes) for more.
	MaxRate = 1e9
	// MinRate is the smallest rate a Schedule represents: one token per
	// 2^62 nanoseconds, about one token every 146 years.
	MinRate = 1e9 / (1 << 62)
	// MaxCapacity is the largest bucket capacity, 2^62 tokens.
	MaxCapacity = 1 << 62
	// MaxElapsed is the longest elapsed time a Schedule accounts for,
	// in nanoseconds (about 292 years); longer times are clamped to it.
	MaxElapsed = math.MaxInt64
	// Never is what TimeOf returns for a token count that is not earned
	// within MaxElapsed.
	Never = math.MaxUint64
)

// Schedule is a refill rate in integer fixed point: one token every
// Interval × 2^-Shift nanoseconds. The zero Schedule is invalid; make one
// with New.
type Schedule struct {
	// Interval is the emission interval T = 1e9/rate nanoseconds, scaled by
	// 2^Shift and rounded up. It lies in [2^62, 2^63].
	Interval uint64
	// Shift is the number of fractional bits in Interval, in [0, 62].
	Shift uint
}

// RangeError reports a rate outside [MinRate, MaxRate], or not a number.
type RangeError struct {
	Rate float64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("refill: rate %v tokens/s is outside the representable range [%v, %v]", e.Rate, MinRate, MaxRate)
}

// New converts rate, in tokens per second, into a Schedule. The conversion
// is exact rational arithmetic, rounded once, up, so that the schedule never
// earns tokens faster than rate. It returns a *RangeError for NaN, infinite,
// or out-of-range rates.
func New(rate float64) (Schedule, error) {
	if math.IsNaN(rate) || rate < MinRate || rate > MaxRate {
		return Schedule{}, &RangeError{Rate: rate}
	}
	// T = 1e9 / rate, exactly: a float64 is an exact binary rational.
	t := new(big.Rat).SetFloat64(rate)
	t.Quo(big.NewRat(1e9, 1), t)
	// Choose Shift so that T × 2^Shift lies in [2^62, 2^63).
	whole := new(big.Int).Quo(t.Num(), t.Denom()) // floor(T) >= 1
	shift := uint(63 - whole.BitLen())
	scaled := new(big.Int).Lsh(t.Num(), shift)
	q, r := new(big.Int).QuoRem(scaled, t.Denom(), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1)) // round up: never earn early
	}
	return Schedule{Interval: q.Uint64(), Shift: shift}, nil
}

// Valid reports whether s was made by New (or is equal to such a Schedule).
func (s Schedule) Valid() bool {
	return s.Shift <= 62 && s.Interval >= 1<<62 && s.Interval <= 1<<63
}

// Rate returns the schedule's rate in tokens per second, as a float64, for
// display. It is never used to decide a request.
func (s Schedule) Rate() float64 {
	return 1e9 * math.Ldexp(1, int(s.Shift)) / float64(s.Interval)
}

// Elapsed returns now - start in nanoseconds as an unsigned number, clamped
// to [0, MaxElapsed]. A reading before start (a clock that went backwards)
// counts as no time at all, so it can only delay tokens, never add them.
func Elapsed(start, now int64) uint64 {
	if now <= start {
		return 0
	}
	// Exact: now > start. The difference of two int64s is below 2^64.
	return min(uint64(now)-uint64(start), MaxElapsed)
}

// Earned returns the number of whole tokens earned in elapsed nanoseconds:
// floor(elapsed × 2^Shift / Interval). It costs one 128-by-64-bit division.
// elapsed must be at most MaxElapsed (use Elapsed).
func (s Schedule) Earned(elapsed uint64) uint64 {
	hi, lo := bits.Mul64(elapsed, 1<<s.Shift)
	// The quotient is at most elapsed (Interval >= 2^Shift), so hi < Interval
	// and Div64 cannot overflow.
	q, _ := bits.Div64(hi, lo, s.Interval)
	return q
}

// TimeOf returns the elapsed time, in nanoseconds, at which the k-th token
// is earned: the smallest e with Earned(e) >= k. It returns 0 for k == 0 and
// Never when that time is beyond MaxElapsed. It costs one multiplication.
func (s Schedule) TimeOf(k uint64) uint64 {
	hi, lo := bits.Mul64(k, s.Interval)
	// ceil((hi:lo) / 2^Shift)
	mask := uint64(1)<<s.Shift - 1
	roundUp := uint64(0)
	if lo&mask != 0 {
		roundUp = 1
	}
	if s.Shift == 0 {
		if hi != 0 || lo > MaxElapsed {
			return Never
		}
		return lo
	}
	if hi>>s.Shift != 0 {
		return Never
	}
	t := hi<<(64-s.Shift) | lo>>s.Shift
	if t >= MaxElapsed {
		if t == MaxElapsed && roundUp == 0 {
			return t
		}
		return Never
	}
	return t + roundUp
}

// Take decides a request for n tokens against a bucket of the given
// capacity that has consumed g tokens, at elapsed nanoseconds since its
// creation. It returns the consumed count to store and whether the tokens
// are granted. It is a pure function: a caller that is denied must store
// nothing, and a caller that is granted stores next (with a compare-and-swap
// against g, in a lock-free bucket).
//
// The caller guarantees 0 < n <= capacity <= MaxCapacity and
// elapsed <= MaxElapsed. With those bounds, g <= Earned(elapsed) + capacity
// always holds, and no operation overflows.
//
// A denial costs at most one Reached (two multiplications; it is decided
// first, so that a denied request costs as little as possible), a grant at
// most two, and a grant by a bucket found full (idle long enough to have
// earned its capacity back) one division more.
func (s Schedule) Take(g, elapsed, n, capacity uint64) (next uint64, ok bool) {
	if s.Short(g, elapsed, n, capacity) {
		return g, false
	}
	if s.Reached(elapsed, g) {
		// Earned >= g: the bucket is full. Tokens earned beyond capacity are
		// forfeited by moving g up to Earned(elapsed).
		return s.Earned(elapsed) + n, true
	}
	// Earned < g, and the bucket holds at least n (Short is false).
	return g + n, true
}

// Short reports whether a bucket of the given capacity that has consumed g
// tokens holds fewer than n at elapsed nanoseconds: exactly when Take
// denies. It costs at most one Reached (none when g + n <= capacity).
//
// The bucket holds capacity - (g - Earned) tokens when Earned < g, so it
// holds fewer than n when Earned < g + n - capacity, that is when
// elapsed < TimeOf(g + n - capacity). That also implies Earned < g (the
// bucket is not full), because n <= capacity makes g + n - capacity <= g.
// Same preconditions as Take.
func (s Schedule) Short(g, elapsed, n, capacity uint64) bool {
	return g+n > capacity && !s.Reached(elapsed, g+n-capacity)
}

// Reached reports whether k tokens have been earned by elapsed nanoseconds:
// Earned(elapsed) >= k, which is elapsed >= TimeOf(k). It decides that
// without dividing and without TimeOf's rounding and range checks, small
// enough to be inlined into a hot path: Earned(elapsed) >= k exactly when
// elapsed × 2^Shift >= k × Interval, and both products are exact in 128
// bits (elapsed <= MaxElapsed < 2^63 and Shift <= 62, so the left side is
// below 2^125; k < 2^64 and Interval <= 2^63, so the right is below 2^127).
// It costs two independent multiplications and a 128-bit comparison.
func (s Schedule) Reached(elapsed, k uint64) bool {
	eh, el := bits.Mul64(elapsed, 1<<s.Shift)
	kh, kl := bits.Mul64(k, s.Interval)
	return eh > kh || (eh == kh && el >= kl)
}

// TakeEarned is Take with Earned(elapsed) computed by the caller: it makes
// the same decision, because TimeOf(k) is the smallest elapsed time with
// Earned >= k, so elapsed >= TimeOf(k) exactly when Earned(elapsed) >= k.
// A caller that retries a compare-and-swap at one clock reading pays the
// division once, outside its retry loop, and each attempt is then two
// comparisons and an addition.
func (s Schedule) TakeEarned(g, earned, n, capacity uint64) (next uint64, ok bool) {
	if earned >= g {
		return earned + n, true // full: tokens beyond capacity are forfeited
	}
	if g+n <= capacity || earned >= g+n-capacity {
		return g + n, true
	}
	return g, false
}

// TakeUpTo is Take for a caller that wants at least min and at most max
// tokens (0 < min <= max <= capacity): it grants as many as the bucket holds,
// up to max, or nothing when it holds fewer than min. It returns the consumed
// count to store and the number granted (0 when denied).
//
// Sharded buckets use it to move a batch of tokens into a local cache with
// one update of the shared state.
func (s Schedule) TakeUpTo(g, elapsed, min, max, capacity uint64) (next, got uint64) {
	if s.Reached(elapsed, g) {
		return s.Earned(elapsed) + max, max
	}
	// Earned < g: the bucket holds capacity - (g - Earned) tokens, or none.
	var held uint64
	if debt := g - s.Earned(elapsed); debt < capacity {
		held = capacity - debt
	}
	if held < min {
		return g, 0
	}
	if held > max {
		held = max
	}
	return g + held, held
}

// Tokens returns the number of tokens the bucket holds at elapsed
// nanoseconds, given its consumed count g. For reports and tests.
func (s Schedule) Tokens(g, elapsed, capacity uint64) uint64 {
	earned := s.Earned(elapsed)
	if earned >= g {
		return capacity
	}
	if g-earned >= capacity {
		return 0
	}
	return capacity - (g - earned)
}
