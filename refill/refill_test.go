package refill

import (
	"errors"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exactInterval returns 1e9/rate ns exactly.
func exactInterval(rate float64) *big.Rat {
	r := new(big.Rat).SetFloat64(rate)
	return r.Quo(big.NewRat(1e9, 1), r)
}

func TestNew(t *testing.T) {
	tests := []struct {
		rate     float64
		interval uint64
		per      uint64 // units per token
	}{
		{MaxRate, 1 << 63, 1},                               // T = 1 ns: units are ns
		{1e9 / 4, 1 << 63, 4},                               // T = 4 ns
		{MinRate, 1 << 63, 1 << 62},                         // T = 2^62 ns
		{1, 1 << 63, 1e9},                                   // T = 1e9 ns
		{0.5, 1 << 63, 2e9},                                 // T = 2e9 ns
		{3, 0x4f790d5555555556, 1 << 29},                    // T = 333333333.33…, rounded up (checked with Python fractions)
		{1e9 / 3, 0x600000000000019d, 1 << 2},               // T = 3 ns, but 1e9/3 is rounded as a float64
		{1e9 / 1.5, 0x600000000000019d, 1 << 1},             // T = 1.5 ns, likewise
		{1e6 / 3, 0x5dc000000000018a, 1 << 12},              // T = 3000 ns, likewise
		{1e9 / 7, 0x6ffffffffffffe1f, 1 << 3},               // T = 7 ns, likewise
		{1234.5678, 0x62e08088073638c8, 1 << 20},            // T = 810000.0656…, rounded up
		{1e9 / (1 << 61), 1 << 63, 1 << 61},                 // T = 2^61 ns
		{1e9 / (1<<61 + 1<<9), 0x400000000000044c, 1 << 62}, // T just above 2^61: the smallest intervals
	}
	for _, tc := range tests {
		l, err := New(1, tc.rate)
		require.NoError(t, err, "rate %v", tc.rate)
		assert.Equal(t, tc.interval, l.interval, "rate %v: interval %#x", tc.rate, l.interval)
		assert.Equal(t, tc.per, l.per, "rate %v", tc.rate)
	}
}

// TestRepresentation checks, for limits across the whole range, every
// property the package documentation's proofs rest on.
func TestRepresentation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type cfg struct {
		capacity uint64
		rate     float64
	}
	cases := []cfg{
		{1, MaxRate}, {MaxCapacity, MaxRate}, {1, MinRate}, {1, 1}, {1e9, 1}, {4611686018, 1},
		{1, 3}, {100, 1e9 / 3}, {1 << 40, 1e9 / 7}, {MaxCapacity / 3, 1e9 / 1.5},
	}
	for range 2000 {
		rate := math.Exp(rng.Float64()*(math.Log(MaxRate)-math.Log(MinRate)) + math.Log(MinRate))
		rate = min(max(rate, MinRate), MaxRate)
		// The largest capacity the rate allows, or a random one below it.
		most := new(big.Rat).Quo(new(big.Rat).SetInt64(MaxBurst), exactInterval(rate))
		top := new(big.Int).Quo(most.Num(), most.Denom())
		if !top.IsUint64() || top.Uint64() > MaxCapacity {
			top.SetUint64(MaxCapacity)
		}
		c := top.Uint64()
		if c == 0 {
			continue
		}
		cases = append(cases, cfg{c, rate}, cfg{1 + rng.Uint64N(c), rate})
	}
	for _, tc := range cases {
		l, err := New(tc.capacity, tc.rate)
		if err != nil {
			// The rate's rounding can push capacity × T just over 2^62.
			require.ErrorContains(t, err, "at most 2^62 ns", "capacity %d rate %v", tc.capacity, tc.rate)
			continue
		}
		// Interval in (2^62, 2^63]: a unit is in (0.5, 1] ns.
		assert.Greater(t, l.interval, uint64(1<<62))
		assert.LessOrEqual(t, l.interval, uint64(1<<63))
		// T rounded up by less than one part in 2^62: interval/2^(63-k) in [T, T(1+2^-62)).
		tq := new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(l.interval), new(big.Int).SetUint64(l.per)), new(big.Int).Lsh(big.NewInt(1), 63))
		exact := exactInterval(tc.rate)
		assert.True(t, tq.Cmp(exact) >= 0, "rate %v: rounded down", tc.rate)
		bound := new(big.Rat).Mul(exact, new(big.Rat).SetFrac(new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 62), big.NewInt(1)), new(big.Int).Lsh(big.NewInt(1), 62)))
		assert.True(t, tq.Cmp(bound) < 0, "rate %v: rounded up by 2^-62 or more", tc.rate)
		// inverse = ceil(2^126 / interval).
		q, r := new(big.Int).QuoRem(new(big.Int).Lsh(big.NewInt(1), 126), new(big.Int).SetUint64(l.interval), new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		assert.Equal(t, q.Uint64(), l.inverse)
		// burst < 2^63, and the range argument: at MaxElapsed nothing overflows.
		assert.Less(t, l.burst, uint64(1<<63))
		assert.GreaterOrEqual(t, l.maxElapsed, uint64(1<<62-1), "capacity %d rate %v", tc.capacity, tc.rate)
		top := l.ceilUnits(l.maxElapsed)
		sum, carry := bits.Add64(top, l.burst, 0)
		assert.Zero(t, carry, "capacity %d rate %v: ceilUnits(MaxElapsed) + burst overflows", tc.capacity, tc.rate)
		assert.Less(t, sum, uint64(Retired), "capacity %d rate %v: a grant can reach Retired", tc.capacity, tc.rate)
		// A bucket that refilled from empty must be reachable within its range.
		assert.False(t, l.Denies(l.burst, l.maxElapsed, l.capacity), "capacity %d rate %v: never refills", tc.capacity, tc.rate)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		capacity uint64
		rate     float64
		reason   string
	}{
		{0, 1, "capacity must be"},
		{MaxCapacity + 1, MaxRate, "capacity must be"},
		{1, 0, "rate must be"},
		{1, -1, "rate must be"},
		{1, math.NaN(), "rate must be"},
		{1, math.Inf(1), "rate must be"},
		{1, math.Inf(-1), "rate must be"},
		{1, math.Nextafter(MaxRate, 2e9), "rate must be"},
		{1, math.Nextafter(MinRate, 0), "rate must be"},
		{1, 1e300, "rate must be"},
		{2, MinRate, "at most 2^62 ns"},                              // 2 × 146 years
		{MaxCapacity, 1, "at most 2^62 ns"},                          // 2^62 s
		{4611686019, 1, "at most 2^62 ns"},                           // just over 2^62 ns at 1/s
		{MaxCapacity, math.Nextafter(MaxRate, 0), "at most 2^62 ns"}, // T just over 1 ns
	}
	for _, tc := range tests {
		_, err := New(tc.capacity, tc.rate)
		var re *RangeError
		if assert.True(t, errors.As(err, &re), "capacity %d rate %v: %v", tc.capacity, tc.rate, err) {
			assert.Contains(t, err.Error(), tc.reason)
		}
	}
	// The edges themselves are accepted.
	for _, ok := range []struct {
		capacity uint64
		rate     float64
	}{{MaxCapacity, MaxRate}, {1, MinRate}, {4611686018, 1}} {
		_, err := New(ok.capacity, ok.rate)
		assert.NoError(t, err, "capacity %d rate %v", ok.capacity, ok.rate)
	}
}

func TestElapsed(t *testing.T) {
	l, err := New(MaxCapacity, MaxRate) // MaxElapsed is MaxInt64 here
	require.NoError(t, err)
	require.Equal(t, uint64(math.MaxInt64), l.MaxElapsed())
	small, err := New(1, 1e9/(1<<61+1<<9)) // units of about 0.5 ns: MaxElapsed about 2^63 - 2^61
	require.NoError(t, err)
	require.Less(t, small.MaxElapsed(), uint64(math.MaxInt64))
	require.NoError(t, err)
	tests := []struct {
		l          *Limit
		start, now int64
		want       uint64
	}{
		{&l, 0, 0, 0},
		{&l, 5, 3, 0}, // backwards: no time at all
		{&l, math.MaxInt64, math.MinInt64, 0},
		{&l, math.MinInt64, math.MaxInt64, math.MaxInt64}, // 2^64-1 clamped
		{&l, -10, 10, 20},
		{&small, 0, math.MaxInt64, small.MaxElapsed()},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tc.l.Elapsed(tc.start, tc.now), "Elapsed(%d, %d)", tc.start, tc.now)
	}
}

// exactDenies is Denies in rational arithmetic: the bucket holds fewer than
// n tokens iff tat - (C-n)×2^k > elapsed / u, u = interval / 2^63 ns.
func exactDenies(l *Limit, tat, elapsed, n uint64) bool {
	allow := new(big.Int).Mul(new(big.Int).SetUint64(l.capacity-n), new(big.Int).SetUint64(l.per))
	owed := new(big.Int).Sub(new(big.Int).SetUint64(tat), allow)
	now := new(big.Rat).SetFrac(new(big.Int).Lsh(new(big.Int).SetUint64(elapsed), 63), new(big.Int).SetUint64(l.interval))
	return new(big.Rat).SetInt(owed).Cmp(now) > 0
}

// testLimits span the range: whole and rounded intervals, the extremes.
var testLimits = []struct {
	capacity uint64
	rate     float64
}{{1, 1}, {2, 3}, {100, 1e9 / 7}, {MaxCapacity, MaxRate}, {1, MinRate}, {1 << 20, 1234.5678}, {5, 1e9 / 1.5}}

func TestDeniesIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, lc := range testLimits {
		l, err := New(lc.capacity, lc.rate)
		require.NoError(t, err)
		for range 20000 {
			n := 1 + rng.Uint64N(l.capacity)
			elapsed := rng.Uint64N(l.maxElapsed + 1)
			if rng.IntN(2) == 0 {
				elapsed = rng.Uint64N(1 << (rng.IntN(62) + 1))
			}
			// A state near the boundary, where exactness matters.
			c := l.ceilUnits(elapsed)
			tat := c + l.burst - n*l.per + rng.Uint64N(5) - 2
			if rng.IntN(3) == 0 {
				tat = rng.Uint64N(c + l.burst)
			}
			require.Equal(t, exactDenies(&l, tat, elapsed, n), l.Denies(tat, elapsed, n),
				"capacity %d rate %v tat %d elapsed %d n %d", lc.capacity, lc.rate, tat, elapsed, n)
			// Tokens agrees with Denies.
			assert.Equal(t, !l.Denies(tat, elapsed, n), l.Tokens(tat, elapsed) >= n)
		}
	}
}

func TestCeilUnits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, rate := range []float64{MaxRate, MinRate, 1, 3, 1e9 / 1.5, 1e9 / 7, 1234.5678} {
		l, err := New(1, rate)
		require.NoError(t, err)
		for _, e := range append([]uint64{0, 1, 2, l.maxElapsed, l.maxElapsed - 1}, rng.Uint64N(l.maxElapsed), rng.Uint64N(1<<40)) {
			exact := new(big.Rat).SetFrac(new(big.Int).Lsh(new(big.Int).SetUint64(e), 63), new(big.Int).SetUint64(l.interval))
			got := new(big.Rat).SetInt(new(big.Int).SetUint64(l.ceilUnits(e)))
			assert.True(t, got.Cmp(exact) >= 0, "rate %v e %d: below e/u", rate, e)
			assert.True(t, got.Cmp(new(big.Rat).Add(exact, big.NewRat(1, 1))) < 0, "rate %v e %d: not the ceiling of e/u", rate, e)
		}
	}
}

func TestTake(t *testing.T) {
	// Capacity 2 at 1 token/s (T = 1e9 ns).
	l, err := New(2, 1)
	require.NoError(t, err)
	s := uint64(0)
	step := func(e, n uint64, want bool) {
		t.Helper()
		next, ok := l.Take(s, e, n)
		require.Equal(t, want, ok, "Take(%d, %d ns, %d)", s, e, n)
		if ok {
			s = next
		} else {
			assert.Equal(t, s, next, "a denial returns the state unchanged")
		}
	}
	step(0, 2, true)             // starts full
	step(0, 1, false)            // empty
	step(999_999_999, 1, false)  // one ns short of the first token
	step(1_000_000_000, 1, true) // due exactly
	step(1_500_000_000, 1, false)
	step(10_000_000_000, 2, true) // long idle: full, and the partial token is forfeited
	step(10_500_000_000, 1, false)
	step(11_000_000_000, 1, true)
}

func FuzzTake(f *testing.F) {
	f.Add(uint64(1), 1.0, uint64(0), uint64(5), uint64(1))
	f.Add(uint64(1<<62), 1e9, uint64(1<<62), uint64(1<<62), uint64(1<<61))
	f.Add(uint64(3), 3.0, uint64(7), uint64(1e9), uint64(3))
	f.Fuzz(func(t *testing.T, capacity uint64, rate float64, seed, elapsed, n uint64) {
		l, err := New(capacity, rate)
		if err != nil {
			return
		}
		n = 1 + n%l.capacity
		elapsed = min(elapsed, l.maxElapsed)
		// Any state a bucket can reach: at most ceilUnits + burst.
		tat := seed % (l.ceilUnits(l.maxElapsed) + l.burst)
		next, ok := l.Take(tat, elapsed, n)
		require.Equal(t, !exactDenies(&l, tat, elapsed, n), ok)
		if ok {
			assert.Greater(t, next, tat, "a grant moves the state forward")
			assert.GreaterOrEqual(t, next, l.ceilUnits(elapsed), "a grant never stores a time before the reading")
		} else {
			assert.Equal(t, tat, next)
		}
	})
}

// exactDue is Due in rational arithmetic: the least whole e with
// tat - (C-n)×P <= e/u, or 0.
func exactDue(l *Limit, tat, n uint64) *big.Int {
	allow := new(big.Int).Mul(new(big.Int).SetUint64(l.capacity-n), new(big.Int).SetUint64(l.per))
	owed := new(big.Int).Sub(new(big.Int).SetUint64(tat), allow)
	if owed.Sign() <= 0 {
		return new(big.Int)
	}
	num := owed.Mul(owed, new(big.Int).SetUint64(l.interval))
	den := new(big.Int).Lsh(big.NewInt(1), 63)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// TestDue: Due is the exact boundary of Denies, for states a bucket
// reaches by grants and by bookings ahead of time, and for Retired.
func TestDue(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, lc := range testLimits {
		l, err := New(lc.capacity, lc.rate)
		require.NoError(t, err)
		for range 5000 {
			n := 1 + rng.Uint64N(l.capacity)
			var tat uint64
			switch rng.IntN(3) {
			case 0:
				tat = rng.Uint64N(l.ceilUnits(l.maxElapsed) + l.burst)
			case 1:
				tat = rng.Uint64N(1 << (rng.IntN(63) + 1))
			default:
				tat = rng.Uint64()
			}
			due := l.Due(tat, n)
			require.Equal(t, exactDue(&l, tat, n).String(), new(big.Int).SetUint64(due).String(),
				"capacity %d rate %v tat %d n %d", lc.capacity, lc.rate, tat, n)
			if due <= l.maxElapsed {
				assert.False(t, l.Denies(tat, due, n), "granted at Due")
			}
			if due > 0 && due-1 <= l.maxElapsed {
				assert.True(t, l.Denies(tat, due-1, n), "denied 1 ns before Due")
			}
		}
		for _, n := range []uint64{1, l.capacity} {
			assert.Greater(t, l.Due(Retired, n), l.maxElapsed, "capacity %d rate %v: Retired is never due", lc.capacity, lc.rate)
			assert.True(t, l.Denies(Retired, l.maxElapsed, n))
		}
	}
}

// TestDueAtTokenBoundaries: at 1 token/s, tokens are due on whole seconds.
func TestDueAtTokenBoundaries(t *testing.T) {
	l, err := New(3, 1) // T = 1e9 ns
	require.NoError(t, err)
	tests := []struct {
		name string
		tat  uint64
		n    uint64
		want uint64
	}{
		{"full", 0, 3, 0},
		{"two left, asks two", 1e9, 2, 0},
		{"two left, asks three", 1e9, 3, 1e9},
		{"empty at 0, asks one", 3e9, 1, 1e9},
		{"empty at 0, asks three", 3e9, 3, 3e9},
		{"booked 2 ahead, asks one", 5e9, 1, 3e9},
		{"half a token", 3e9 + 5e8, 1, 1e9 + 5e8},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, l.Due(tc.tat, tc.n), tc.name)
	}
}

// TestBalance: Balance agrees with Denies on states booked ahead (where it
// goes negative) and with Tokens where that is not floored.
func TestBalance(t *testing.T) {
	l, err := New(3, 1)
	require.NoError(t, err)
	tests := []struct {
		tat, elapsed uint64
		want         int64
	}{
		{0, 0, 3}, {3e9, 0, 0}, {3e9, 1, 0}, {3e9, 1e9, 1}, {5e9, 0, -2}, {5e9 + 1, 0, -3}, {5e9, 10e9, 3},
		{Retired, 0, 3 - 18446744074}, // ceil((2^64-1) / 1e9) tokens owed
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, l.Balance(tc.tat, tc.elapsed), "tat %d elapsed %d", tc.tat, tc.elapsed)
		assert.Equal(t, uint64(max(tc.want, 0)), l.Tokens(tc.tat, tc.elapsed))
	}
	small, err := New(MaxCapacity, MaxRate) // P = 1: a debt of 2^64-1 tokens
	require.NoError(t, err)
	assert.Equal(t, int64(math.MinInt64+1), small.Balance(1<<62+1<<63-1, 0), "2^62 - (2^62 + 2^63 - 1)")
	assert.Equal(t, int64(math.MinInt64), small.Balance(Retired, 0), "saturates")
	rng := rand.New(rand.NewPCG(9, 10))
	for range 2000 {
		tat, e, n := rng.Uint64N(1e11), rng.Uint64N(1e11), 1+rng.Uint64N(3)
		assert.Equal(t, !l.Denies(tat, e, n), l.Balance(tat, e) >= int64(n), "tat %d e %d n %d", tat, e, n)
	}
}

// TestRate: Rate gives back the rate New was given, whole intervals or not.
func TestRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	rates := []float64{MaxRate, MinRate, 1, 3, 0.5, 1e9 / 3, 1e9 / 7, 1234.5678, 1e-3, 1e5, math.Nextafter(MaxRate, 0)}
	for range 2000 {
		r := math.Exp(rng.Float64()*(math.Log(MaxRate)-math.Log(MinRate)) + math.Log(MinRate))
		rates = append(rates, min(max(r, MinRate), MaxRate))
	}
	for _, r := range rates {
		l, err := New(1, r)
		require.NoError(t, err)
		assert.Equal(t, r, l.Rate(), "rate %v", r)
	}
	assert.Zero(t, (&Limit{}).Rate(), "the zero Limit")
}
