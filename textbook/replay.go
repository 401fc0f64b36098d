package textbook

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"time"
)

// Case is one configuration of a differential test: a bucket of Capacity at
// Rate, asked for tokens at gaps drawn from Gaps (jittered by ±1 ns one time
// in three) in sizes drawn from Sizes (0 stands for Capacity).
type Case struct {
	Name     string
	Capacity int64
	Rate     float64
	Gaps     []time.Duration
	Sizes    []int64
}

// Cases returns the configurations the lab replays every bucket through: at
// least ten, covering capacity 1, tiny and huge rates, emission intervals
// that are and are not whole nanoseconds, requests of 1 and of Capacity, and
// idle gaps from 1 ns to decades.
func Cases() []Case {
	return []Case{
		{"capacity 1 at 1/s", 1, 1, []time.Duration{1, 300 * time.Millisecond, 500 * time.Millisecond, 999_999_999, time.Second, 1500 * time.Millisecond}, []int64{1}},
		{"capacity 2 at 3/s (interval not whole ns)", 2, 3, []time.Duration{1, 100 * time.Millisecond, 333_333_333, 333_333_334, time.Second}, []int64{1, 2}},
		{"capacity 10 at 10/s, requests of 1 and 10", 10, 10, []time.Duration{1, 10 * time.Millisecond, 99_999_999, 100 * time.Millisecond, time.Second}, []int64{1, 0, 3}},
		{"capacity 100 at 1000/s", 100, 1000, []time.Duration{1, 999_999, time.Millisecond, 50 * time.Millisecond}, []int64{1, 0, 7, 50}},
		{"tiny rate: one per 11.6 days", 2, 1e-6, []time.Duration{1, time.Hour, 24 * time.Hour, 11 * 24 * time.Hour, 365 * 24 * time.Hour}, []int64{1, 0}},
		{"MaxRate: one per ns", 1000, 1e9, []time.Duration{1, 2, 3, 100, 999, 1000}, []int64{1, 0, 10, 500}},
		{"huge rate, interval 1.5 ns", 5, 1e9 / 1.5, []time.Duration{1, 2, 3, 7}, []int64{1, 0, 2}},
		{"1e6/3 per second, capacity 1e6", 1_000_000, 1e6 / 3, []time.Duration{1, 3000, 3001, time.Millisecond, time.Second, 3 * time.Second}, []int64{1, 0, 1000, 333_333}},
		{"7.5/s, requests of capacity only", 7, 7.5, []time.Duration{1, 133_333_333, 933_333_333, 933_333_334, time.Second}, []int64{0}},
		{"idle gaps from 1 ns to decades", 3, 1, []time.Duration{1, time.Second, 24 * time.Hour, 365 * 24 * time.Hour, 10 * 365 * 24 * time.Hour}, []int64{1, 0}},
		{"1234.5678/s, capacity 50", 50, 1234.5678, []time.Duration{1, 810_000, 810_001, 10 * time.Millisecond}, []int64{1, 0, 13}},
		{"MaxCapacity at MaxRate", 1 << 62, 1e9, []time.Duration{1, 1000, time.Second, 100 * 365 * 24 * time.Hour}, []int64{1, 0, 1 << 61}},
	}
}

// Result is what Replay measured.
type Result struct {
	Decisions    int
	OverGrants   int     // granted what the textbook bucket refused
	WrongDenials int     // denied what it granted, beyond the tolerance
	Tolerated    int     // denied what it granted, within the tolerance
	WindowExcess float64 // most tokens granted over a window beyond Capacity + Rate × W
	FirstWrong   string  // the first over-grant or wrong denial, for a failure message
}

// Replay drives take through one random sequential history of c (seeded by
// seed, steps requests, readings from start on) and compares every decision
// with the textbook bucket at rate tokens per second: c.Rate when rate is
// nil, or the rate an implementation states it rounds c.Rate to. take(now, n) asks the bucket under test for n
// tokens at the reading now. A denial is tolerated when the textbook bucket
// would grant with fewer than rate × toleranceNs tokens to spare. The
// textbook bucket follows the decisions made, so that one tolerated denial
// does not make every later decision a disagreement. Requests that can never
// succeed (0, -1, Capacity+1) are mixed in and must be refused: an error says
// which was not.
func Replay(c Case, rate *big.Rat, toleranceNs int64, seed uint64, steps int, start int64, take func(now, n int64) bool) (Result, error) {
	rng := rand.New(rand.NewPCG(seed, 7))
	if rate == nil {
		rate = new(big.Rat).SetFloat64(c.Rate)
	}
	ref := NewRat(c.Capacity, rate, start)
	slack := ref.Earned(toleranceNs)
	var res Result
	var grants []Grant
	now := start
	for i := range steps {
		if i > 0 {
			gap := int64(c.Gaps[rng.IntN(len(c.Gaps))])
			if rng.IntN(3) == 0 {
				gap += rng.Int64N(3) - 1
			}
			if gap > 0 && now <= math.MaxInt64-gap {
				now += gap
			}
		}
		n := c.Sizes[rng.IntN(len(c.Sizes))]
		if n == 0 {
			n = c.Capacity
		}
		if rng.IntN(50) == 0 {
			for _, bad := range []int64{0, -1, c.Capacity + 1} {
				if take(now, bad) {
					return res, fmt.Errorf("step %d: TryTake(%d) granted on a bucket of capacity %d", i, bad, c.Capacity)
				}
			}
		}
		got := take(now, n)
		margin := ref.Margin(now, n)
		res.Decisions++
		wrong := ""
		switch {
		case got && margin.Sign() < 0:
			res.OverGrants++
			wrong = "granted"
		case !got && margin.Sign() >= 0 && margin.Cmp(slack) < 0:
			res.Tolerated++
		case !got && margin.Sign() >= 0:
			res.WrongDenials++
			wrong = "denied"
		}
		if wrong != "" && res.FirstWrong == "" {
			res.FirstWrong = fmt.Sprintf("%s: step %d: TryTake(%d) at +%d ns %s with %s tokens to spare", c.Name, i, n, now-start, wrong, margin.FloatString(9))
		}
		if got {
			ref.Spend(now, n)
			grants = append(grants, Grant{At: now, N: n})
		}
	}
	res.WindowExcess, _ = WindowExcess(grants, c.Capacity, rate).Float64()
	return res, nil
}

// Grant is a grant of N tokens at the reading At, for WindowExcess.
type Grant struct {
	At int64
	N  int64
}

// WindowExcess returns, exactly, the largest Σn − (capacity + rate × (t_j −
// t_i)) over every window [t_i, t_j] of grants ordered by reading: how far
// the grants break the textbook bound over their worst window (0 when a
// window meets it exactly, negative when none does). It takes one pass: with
// P_j the tokens granted up to j, the excess of (i, j) is
// (P_j − rate×t_j) − (P_{i−1} − rate×t_i) − capacity.
func WindowExcess(grants []Grant, capacity int64, perSecond *big.Rat) *big.Rat {
	r := new(big.Rat).Quo(perSecond, big.NewRat(1e9, 1))
	best := new(big.Rat).SetInt64(-capacity)
	var runMax *big.Rat // max over i <= j of rate×t_i − P_{i−1}
	var prefix int64
	for _, g := range grants {
		rt := new(big.Rat).Mul(r, new(big.Rat).SetInt64(g.At))
		if start := new(big.Rat).Sub(rt, new(big.Rat).SetInt64(prefix)); runMax == nil || start.Cmp(runMax) > 0 {
			runMax = start
		}
		prefix += g.N
		excess := new(big.Rat).Sub(new(big.Rat).SetInt64(prefix), rt)
		excess.Add(excess, runMax)
		if excess.Sub(excess, new(big.Rat).SetInt64(capacity)); excess.Cmp(best) > 0 {
			best = excess
		}
	}
	return best
}
