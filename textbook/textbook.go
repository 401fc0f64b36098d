// Package textbook is the token bucket as the textbooks, the source article
// and golang.org/x/time/rate define it, computed in exact rational
// arithmetic: the oracle the lab's buckets are checked against.
//
// The bucket starts full; at each reading, tokens = min(Capacity, tokens +
// Rate × dt); a request for n is granted iff tokens >= n, and then spends n.
// A reading earlier than the last one earns nothing (dt counts as 0).
//
// It is slow (math/big on every call) and not safe for concurrent use: it
// is for tests, which replay a history through it, and for Model, which
// lets porcupine check a concurrent history against it.
package textbook

import (
	"fmt"
	"math/big"
)

// Bucket is the exact textbook token bucket on a clock of nanoseconds.
type Bucket struct {
	capacity *big.Rat
	rate     *big.Rat // tokens per nanosecond
	tokens   *big.Rat
	last     int64
}

// New returns a full Bucket of the given capacity and rate (tokens per
// second, the exact value of the float64), started at the reading start.
func New(capacity int64, rate float64, start int64) *Bucket {
	return NewRat(capacity, new(big.Rat).SetFloat64(rate), start)
}

// NewRat is New with the rate as an exact rational, for an implementation
// that states its rate as one (a whole number of nanoseconds per token).
func NewRat(capacity int64, perSecond *big.Rat, start int64) *Bucket {
	c := new(big.Rat).SetInt64(capacity)
	r := new(big.Rat).Quo(perSecond, big.NewRat(1e9, 1))
	return &Bucket{capacity: c, rate: r, tokens: new(big.Rat).Set(c), last: start}
}

// Tokens returns what the bucket holds at the reading now, without
// changing it.
func (b *Bucket) Tokens(now int64) *big.Rat {
	t := new(big.Rat).Set(b.tokens)
	if now > b.last {
		earned := new(big.Rat).SetInt64(now - b.last)
		t.Add(t, earned.Mul(earned, b.rate))
	}
	if t.Cmp(b.capacity) > 0 {
		t.Set(b.capacity)
	}
	return t
}

// Margin returns Tokens(now) - n: how many tokens to spare a grant of n
// would leave (negative: the request is short by that much).
func (b *Bucket) Margin(now, n int64) *big.Rat {
	return new(big.Rat).Sub(b.Tokens(now), new(big.Rat).SetInt64(n))
}

// Earned returns the tokens the rate earns in d nanoseconds: Rate × d.
func (b *Bucket) Earned(d int64) *big.Rat {
	return new(big.Rat).Mul(b.rate, new(big.Rat).SetInt64(d))
}

// Advance moves the bucket to the reading now (a no-op for an earlier
// reading): it adds what the time since the last reading earned, up to
// Capacity.
func (b *Bucket) Advance(now int64) {
	b.tokens = b.Tokens(now)
	if now > b.last {
		b.last = now
	}
}

// TryTake advances to now and grants n iff the bucket holds n, spending them.
func (b *Bucket) TryTake(now, n int64) bool {
	b.Advance(now)
	if b.Margin(now, n).Sign() < 0 {
		return false
	}
	b.tokens.Sub(b.tokens, new(big.Rat).SetInt64(n))
	return true
}

// Spend advances to now and spends n tokens, which the caller has checked
// are there; for replaying a decision taken elsewhere.
func (b *Bucket) Spend(now, n int64) {
	b.Advance(now)
	b.tokens.Sub(b.tokens, new(big.Rat).SetInt64(n))
}

// String describes the bucket's state, for failure messages.
func (b *Bucket) String() string {
	f, _ := b.tokens.Float64()
	return fmt.Sprintf("%.9g tokens at t=%d", f, b.last)
}
