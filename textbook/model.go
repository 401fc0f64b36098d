package textbook

import (
	"fmt"
	"math/big"
	"sort"

	"github.com/anishathalye/porcupine"
)

// Request is one TryTake of a concurrent history, for Model: n tokens,
// decided at some reading of the bucket's clock between From and To (the
// clock's readings just before the call and just after it returned). Its
// porcupine output is the bool TryTake returned.
type Request struct {
	N        int64
	From, To int64
}

// state is a Model state: the textbook bucket's tokens (as a rational's
// string, so that states compare with ==) at the reading last.
type state struct {
	tokens string
	last   int64
}

// Model returns a porcupine model of the textbook bucket with the clock in
// its state: a history is linearizable against it when some order of its
// requests, each decided at a reading of the clock within its call (and the
// readings non-decreasing in that order), makes every decision the textbook
// bucket's. readings lists every value the clock took during the history
// (a ManualClock driven by the test); a grant may be decided at any of them
// within [From, To], and moves the model's clock there. A denial changes
// nothing, so it is checked at the earliest reading it could have used (the
// fewest tokens) and leaves the model's clock where it was; that keeps the
// number of states small. A denial with less than Rate × toleranceNs tokens
// to spare is allowed (refill.Tolerance, for rates whose interval is not a
// whole number of nanoseconds); a grant the textbook bucket refuses never is.
func Model(capacity int64, rate float64, readings []int64, toleranceNs int64) porcupine.Model {
	ticks := append([]int64(nil), readings...)
	sort.Slice(ticks, func(i, j int) bool { return ticks[i] < ticks[j] })
	ref := New(capacity, rate, 0)
	slack := ref.Earned(toleranceNs)
	nm := porcupine.NondeterministicModel{
		Init: func() []interface{} {
			return []interface{}{state{tokens: ref.capacity.RatString(), last: ticks[0]}}
		},
		Step: func(st, in, out interface{}) []interface{} {
			s, r, granted := st.(state), in.(Request), out.(bool)
			b := &Bucket{capacity: ref.capacity, rate: ref.rate, last: s.last}
			b.tokens, _ = new(big.Rat).SetString(s.tokens)
			first := max(r.From, s.last)
			if first > r.To {
				return nil // its readings all precede the model's clock
			}
			if !granted {
				if margin := b.Margin(first, r.N); margin.Sign() < 0 || margin.Cmp(slack) < 0 {
					return []interface{}{s}
				}
				return nil
			}
			var next []interface{}
			for _, t := range append([]int64{first}, ticks[sort.Search(len(ticks), func(i int) bool { return ticks[i] > first }):]...) {
				if t > r.To {
					break
				}
				if b.Margin(t, r.N).Sign() >= 0 {
					next = append(next, state{tokens: new(big.Rat).Sub(b.Tokens(t), new(big.Rat).SetInt64(r.N)).RatString(), last: t})
				}
			}
			return next
		},
		DescribeOperation: func(in, out interface{}) string {
			r := in.(Request)
			return fmt.Sprintf("TryTake(%d) in [%d, %d] -> %v", r.N, r.From, r.To, out)
		},
		DescribeState: func(st interface{}) string {
			s := st.(state)
			return fmt.Sprintf("%s tokens at %d", s.tokens, s.last)
		},
	}
	return nm.ToModel()
}
