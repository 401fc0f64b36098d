// Package refill is the integer fixed-point arithmetic that the lab's token
// buckets share. It converts a capacity and a rate, once, into a [Limit],
// and then decides every request with integer multiplications and
// comparisons: no division, no floating point.
//
// # What is computed
//
// The textbook token bucket: it starts full, tokens = min(Capacity, tokens +
// Rate × dt), and a request for n is granted iff tokens >= n, which then
// spends n. Equivalently (GCRA, the generic cell rate algorithm), the bucket
// keeps its theoretical arrival time tat: the instant at which it will be
// full again if nothing more is granted. At time t it holds
// Capacity - max(0, tat - t)/T tokens, T = 1/Rate being the emission
// interval; a grant of n sets tat = max(tat, t) + n×T. Resetting to t when
// tat < t is what forfeits the tokens earned beyond Capacity, partial token
// included, so over any window of length W the bucket grants at most
// Capacity + Rate × W tokens.
//
// # Representation
//
// The state is one uint64, tat, counted in units of u = Interval / 2^63 ns,
// Interval in (2^62, 2^63], so that u lies in (0.5, 1] ns, and a token costs
// exactly P units (Per). In those units the burst allowance is Capacity × P,
// and grants add no rounding error at all. Two cases:
//
//   - T is a whole number of nanoseconds (1/s, 10/s, 1000/s, 1/min, ...): u
//     is 1 ns and P = T. Every clock reading is a whole number of units, so
//     the bucket is exactly the textbook bucket.
//   - Otherwise T is rounded up, once, to 62 significant bits: P = 2^k and
//     u = T/2^k in (0.5, 1] ns. The bucket is the textbook bucket at a rate
//     at most 2^-62 below the configured one, never above it, and a reading
//     converts to units with a rounding covered by the tolerance below.
//
// A clock reading is e ns after construction. A request for n is granted iff
//
//	tat <= e/u + (Capacity - n) × P
//
// which is decided exactly, without dividing, as
// (tat - (Capacity - n)×P) × Interval <= e × 2^63 (both sides are exact
// 128-bit products). A grant then stores max(tat, ceil(e/u)) + n × P, the
// ceiling computed by multiplying by Inverse = ceil(2^126/Interval) and
// checking the result with one more multiplication. A denial stores nothing.
//
// # Exactness
//
// Let X be the textbook bucket's tat (at the rounded rate), in real units,
// fed the same readings and the same decisions. Then 0 <= tat - X < 1 unit
// at all times:
//
//   - At construction both are 0 (the bucket starts full at e = 0).
//   - A grant sets tat to max(tat, c) + n×P and X to max(X, e/u) + n×P,
//     with c = ceil(e/u) in [e/u, e/u + 1). max is monotone, so
//     0 <= tat - X keeps holding, and the gap after a reset (c - e/u) is
//     below one unit.
//
// Every grant is therefore a grant of the textbook bucket (its tat is no
// later than ours, and the comparison is exact). The only difference is a
// denial when the textbook bucket would grant with less than one unit to
// spare, that is when it became able to grant the request less than 1 ns
// before the reading: [Tolerance]. Add to that the rate's rounding, which
// makes every token at most 2^-62 × T late: less than a nanosecond over any
// run shorter than a century. When T is a whole number of nanoseconds,
// e/u = e is a whole number of units, c = e/u, the gap is always 0 and
// there is no tolerance at all. Otherwise a denial within the tolerance is
// what a caller sees when a full bucket is emptied in one instant of a
// clock that is not moving (a ManualClock, say): its last token may come a
// fraction of a nanosecond later.
//
// Readings are the caller's business: a lock-free bucket reads the clock
// after loading tat and before its compare-and-swap, so that the order of
// successful updates is the order of their readings and the run is one
// textbook run (see impls/cas).
//
// # Range and overflow
//
// Valid configurations have 1 <= Capacity <= MaxCapacity, MinRate <= Rate <=
// MaxRate and Capacity × T <= MaxBurst = 2^62 ns (about 146 years of refill
// from empty; New rejects more). Then, with u > 0.5 ns:
//
//   - Capacity × P = Capacity × T / u < 2^62 / 0.5 = 2^63.
//   - A grant needs tat <= e/u + (Capacity - n)×P <= c + (Capacity - n)×P
//     and stores at most c + Capacity × P, so tat <= c + Capacity × P
//     always. New computes MaxElapsed, the largest e <= 2^63-1 for which
//     c + Capacity × P <= 2^64-2; readings beyond it are clamped to it
//     (the bucket stops earning). No state ever reaches 2^64-1 ([Retired]).
//   - A grant at a future reading (a reservation, booked at its [Limit.Due]
//     time d <= MaxElapsed) stores max(tat, ceil(d/u)) + n×P with
//     tat <= d/u + (Capacity - n)×P, so the same bound holds with c(d). Since Capacity × P < 2^63 and
//     Inverse < 2^64, MaxElapsed >= 2^62 - 1 ns: every bucket runs at least
//     146 years, most about 292.
//   - The comparison's left product is below 2^64 × 2^63 and the right one
//     below 2^63 × 2^63; e × Inverse is below 2^63 × 2^64. All fit in 128
//     bits, and c <= floor(e × Inverse / 2^63) + 1 < 2^64.
package refill

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

const (
	// MaxRate is the largest rate a Limit represents: one token per
	// nanosecond. Count in larger units (KiB instead of bytes) for more.
	MaxRate = 1e9
	// MinRate is the smallest rate a Limit represents: one token per 2^62
	// nanoseconds, about one token every 146 years.
	MinRate = 1e9 / (1 << 62)
	// MaxCapacity is the largest bucket capacity, 2^62 tokens.
	MaxCapacity = 1 << 62
	// MaxBurst is the largest Capacity / Rate, in nanoseconds: 2^62 ns,
	// about 146 years to refill from empty.
	MaxBurst = 1 << 62
	// Tolerance is how close to the textbook bucket's boundary a denial of
	// a request the textbook bucket grants can be: the bucket may deny a
	// request only if the textbook bucket could not have granted it 1 ns
	// earlier (see the package documentation). The rate's rounding adds at
	// most (Capacity/Rate + elapsed) × 2^-62 ns to that.
	Tolerance = 1 // ns
)

// Limit is a bucket's capacity and rate in integer fixed point, immutable
// after New and safe to share. The zero Limit is invalid; make one with New.
type Limit struct {
	capacity   uint64 // Capacity
	burst      uint64 // Capacity × per: the allowance in units
	per        uint64 // P: units per token
	interval   uint64 // I in (2^62, 2^63]: a unit is I / 2^63 ns
	inverse    uint64 // ceil(2^126 / I): units per ns, scaled by 2^63
	maxElapsed uint64 // readings beyond it are clamped (see the package doc)
}

// RangeError reports a capacity or rate outside what a Limit represents.
type RangeError struct {
	Capacity uint64
	Rate     float64
	Reason   string
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("refill: capacity %d at %v tokens/s: %s", e.Capacity, e.Rate, e.Reason)
}

// New converts capacity and rate (tokens per second) into a Limit. The
// conversion is exact rational arithmetic, rounded once so that the limit
// never earns tokens faster than rate. It returns a *RangeError for a
// capacity outside [1, MaxCapacity], a rate that is NaN or outside
// [MinRate, MaxRate], or capacity / rate above MaxBurst.
func New(capacity uint64, rate float64) (Limit, error) {
	switch {
	case capacity < 1 || capacity > MaxCapacity:
		return Limit{}, &RangeError{capacity, rate, fmt.Sprintf("capacity must be in [1, %d]", uint64(MaxCapacity))}
	case math.IsNaN(rate) || rate < MinRate || rate > MaxRate:
		return Limit{}, &RangeError{capacity, rate, fmt.Sprintf("rate must be in [%v, %v]", MinRate, MaxRate)}
	}
	// T = 1e9 / rate ns, exactly: a float64 is an exact binary rational.
	t := new(big.Rat).SetFloat64(rate)
	t.Quo(big.NewRat(1e9, 1), t)
	interval, per := uint64(1<<63), uint64(0)
	if t.IsInt() {
		// T whole nanoseconds: units of exactly 1 ns, and a token costs T.
		per = new(big.Int).Quo(t.Num(), t.Denom()).Uint64()
	} else {
		// Interval = ceil(T × 2^Shift) in (2^62, 2^63]: with 2^(L-1) < T < 2^L
		// (T is not a whole number, so not a power of two), Shift = 63 - L
		// puts T × 2^Shift in (2^62, 2^63). A token is 2^(63-Shift) units.
		shift := 63 - new(big.Int).Quo(t.Num(), t.Denom()).BitLen()
		scaled := new(big.Int).Lsh(t.Num(), uint(shift))
		q, r := new(big.Int).QuoRem(scaled, t.Denom(), new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1)) // round up: never earn early
		}
		interval, per = q.Uint64(), 1<<(63-shift)
	}
	// Capacity × T (rounded) <= 2^62 ns: capacity × per × interval / 2^63 <= 2^62.
	burstNs := new(big.Int).Mul(new(big.Int).SetUint64(capacity), new(big.Int).SetUint64(per))
	if burstNs.Mul(burstNs, new(big.Int).SetUint64(interval)).Cmp(new(big.Int).Lsh(big.NewInt(1), 125)) > 0 {
		return Limit{}, &RangeError{capacity, rate, "capacity / rate must be at most 2^62 ns (about 146 years)"}
	}
	inverse, rem := bits.Div64(1<<62, 0, interval) // 2^126 / I < 2^64, since I > 2^62
	if rem != 0 {
		inverse++
	}
	lim := Limit{capacity: capacity, burst: capacity * per, per: per, interval: interval, inverse: inverse}
	// MaxElapsed: an e with ceilUnits(e) + burst <= 2^64-2, that is
	// floor(e × inverse / 2^63) < h = 2^64-2-burst, which holds when
	// e × inverse < h × 2^63: e = floor(h × 2^63 / inverse) - 1. (2^64-1
	// is left unreachable: see Retired.)
	h := Retired - 1 - lim.burst
	e, _ := bits.Div64(h>>1, h<<63, inverse) // h>>1 < 2^63 <= inverse: no overflow
	lim.maxElapsed = min(e-1, math.MaxInt64)
	return lim, nil
}

// Retired is a state that no bucket reaches (MaxElapsed keeps every grant
// below it), for a caller that needs to mark a state word as no longer in
// use: Denies refuses every request at every reading up to MaxElapsed in
// it, and Due puts it beyond MaxElapsed.
const Retired = math.MaxUint64

// Capacity returns the limit's capacity in tokens.
func (l *Limit) Capacity() uint64 { return l.capacity }

// MaxElapsed returns the longest time since construction, in nanoseconds,
// that the limit accounts for; Elapsed clamps later readings to it. It is
// at least 2^62 - 1 ns (146 years).
func (l *Limit) MaxElapsed() uint64 { return l.maxElapsed }

// Elapsed returns now - start in nanoseconds as an unsigned number, clamped
// to [0, MaxElapsed]. A reading before start (a clock that went backwards)
// counts as no time at all, so it can only delay tokens, never add them.
func (l *Limit) Elapsed(start, now int64) uint64 {
	if now <= start {
		return 0
	}
	// Exact: now > start. The difference of two int64s is below 2^64.
	return min(uint64(now)-uint64(start), l.maxElapsed)
}

// Take decides a request for n tokens against the state tat at elapsed
// nanoseconds since construction (at most MaxElapsed; use Elapsed). It
// returns the state to store and whether the tokens are granted. It is a
// pure function: a caller that is denied must store nothing, and a caller
// that is granted stores next (with a compare-and-swap against tat, in a
// lock-free bucket). The caller guarantees 0 < n <= Capacity, and tat is 0
// or a value Take returned.
//
// A denial costs two multiplications, a grant four.
func (l *Limit) Take(tat, elapsed, n uint64) (next uint64, ok bool) {
	if l.Denies(tat, elapsed, n) {
		return tat, false
	}
	return l.Granted(tat, elapsed, n), true
}

// Granted returns the state after a grant of n at elapsed, for a caller
// that has checked Denies itself: Take without the check. Two
// multiplications.
func (l *Limit) Granted(tat, elapsed, n uint64) uint64 {
	return max(tat, l.ceilUnits(elapsed)) + n*l.per
}

// Denies reports whether Take denies: whether a bucket in state tat holds
// fewer than n tokens at elapsed nanoseconds. Same preconditions as Take.
// It is small enough to be inlined into a caller's hot path.
func (l *Limit) Denies(tat, elapsed, n uint64) bool {
	allow := l.burst - n*l.per // (Capacity - n) × P: what may be owed after the grant
	if tat <= allow {
		return false // at most the allowance owed: granted at any reading
	}
	// Granted iff tat - allow <= elapsed / u, i.e. (tat - allow) × I <= elapsed × 2^63.
	yh, yl := bits.Mul64(tat-allow, l.interval)
	eh, el := elapsed>>1, elapsed<<63
	return yh > eh || (yh == eh && yl > el)
}

// ceilUnits returns ceil(elapsed / u), exactly: the product with the
// rounded-up inverse is at most one unit too high, and one more
// multiplication tells whether it is.
func (l *Limit) ceilUnits(elapsed uint64) uint64 {
	hi, lo := bits.Mul64(elapsed, l.inverse)
	c := hi<<1 | lo>>63 // floor(elapsed × inverse / 2^63), in [floor(e/u), floor(e/u) + 1]
	// c >= e/u iff c × I >= e × 2^63; if not, the ceiling is c + 1.
	ch, cl := bits.Mul64(c, l.interval)
	if eh, el := elapsed>>1, elapsed<<63; ch < eh || (ch == eh && cl < el) {
		c++
	}
	return c
}

// Tokens returns the whole tokens a bucket in state tat holds at elapsed
// nanoseconds, for reports and tests: Capacity - ceil(debt / T), where debt
// is tat - elapsed/u when positive, and 0 when that is negative. Not for the
// hot path: it divides.
func (l *Limit) Tokens(tat, elapsed uint64) uint64 {
	return uint64(max(l.Balance(tat, elapsed), 0))
}

// Balance is Tokens without the floor at zero: a state booked ahead of
// its time (reservations) owes tokens, and Balance is then negative, down
// to math.MinInt64. A request for n is granted iff Balance >= n.
func (l *Limit) Balance(tat, elapsed uint64) int64 {
	// debt in units × I = tat × I - elapsed × 2^63, exactly.
	debt := new(big.Int).Mul(new(big.Int).SetUint64(tat), new(big.Int).SetUint64(l.interval))
	debt.Sub(debt, new(big.Int).Lsh(new(big.Int).SetUint64(elapsed), 63))
	if debt.Sign() <= 0 {
		return int64(l.capacity)
	}
	// tokens owed = ceil(debt / (I × P)).
	per := new(big.Int).Mul(new(big.Int).SetUint64(l.interval), new(big.Int).SetUint64(l.per))
	owed, r := new(big.Int).QuoRem(debt, per, new(big.Int))
	if r.Sign() != 0 {
		owed.Add(owed, big.NewInt(1))
	}
	b := owed.Sub(new(big.Int).SetUint64(l.capacity), owed)
	if !b.IsInt64() {
		return math.MinInt64
	}
	return b.Int64()
}

// Due returns the earliest reading, in whole nanoseconds since
// construction, at which a bucket in state tat holds n tokens: the least e
// for which Denies(tat, e, n) is false, and 0 if it holds them at every
// reading. It is exact: ceil((tat - (Capacity - n)×P) × u). The result may
// lie beyond MaxElapsed, where the bucket never gets; Due(Retired, n) does.
// Same precondition on n as Take; tat may be any state.
func (l *Limit) Due(tat, n uint64) uint64 {
	allow := l.burst - n*l.per
	if tat <= allow {
		return 0
	}
	// (tat - allow) × I < 2^127, so the quotient by 2^63 fits, and is
	// 2^64-1 at most only with a zero remainder: the increment cannot wrap.
	hi, lo := bits.Mul64(tat-allow, l.interval)
	due := hi<<1 | lo>>63
	if lo<<1 != 0 {
		due++
	}
	return due
}

// Rate returns the limit's rate in tokens per second, rounded to the
// nearest float64: the rate New was given, since the interval's rounding
// (under 2^-62 relative) is far below half a float64 step (at least
// 2^-55 relative). Not for
// the hot path: it divides in math/big.
func (l *Limit) Rate() float64 {
	if l.per == 0 { // the zero Limit
		return 0
	}
	num := new(big.Int).Lsh(big.NewInt(1e9), 63)
	den := new(big.Int).Mul(new(big.Int).SetUint64(l.per), new(big.Int).SetUint64(l.interval))
	f, _ := new(big.Rat).SetFrac(num, den).Float64()
	return f
}
