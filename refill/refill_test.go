package refill

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exactEarned returns floor(elapsed × rate / 1e9) with rate the exact value
// of the float64: the most tokens a schedule may have earned.
func exactEarned(elapsed uint64, rate float64) *big.Int {
	r := new(big.Rat).SetFloat64(rate)
	r.Mul(r, new(big.Rat).SetFrac(new(big.Int).SetUint64(elapsed), big.NewInt(1e9)))
	return new(big.Int).Quo(r.Num(), r.Denom())
}

// withinPrecision reports whether earned is at most one token plus one
// token in 2^62 behind the exact count: the schedule's interval is rounded
// up by less than 2^-62 of itself, so it falls behind by at most that share.
func withinPrecision(earned uint64, exact *big.Int) bool {
	slack := new(big.Int).Rsh(exact, 62)
	slack.Add(slack, big.NewInt(1))
	return new(big.Int).Add(new(big.Int).SetUint64(earned), slack).Cmp(exact) >= 0
}

func TestNew(t *testing.T) {
	tests := []struct {
		rate     float64
		interval uint64
		shift    uint
	}{
		{MaxRate, 1 << 62, 62},      // T = 1 ns
		{1e9 / 4, 1 << 62, 60},      // T = 4 ns
		{1, 1e9 << 33, 33},          // T = 1e9 ns
		{MinRate, 1 << 62, 0},       // T = 2^62 ns
		{0.5, 2e9 << 32, 32},        // T = 2e9 ns
		{3, 0x4f790d5555555556, 34}, // T = 333333333.33…, rounded up (checked with Python fractions)
	}
	for _, tc := range tests {
		s, err := New(tc.rate)
		require.NoError(t, err, "rate %v", tc.rate)
		assert.Equal(t, tc.interval, s.Interval, "rate %v: Interval %#x", tc.rate, s.Interval)
		assert.Equal(t, tc.shift, s.Shift, "rate %v", tc.rate)
		assert.True(t, s.Valid())
		assert.InEpsilon(t, tc.rate, s.Rate(), 1e-15)
	}
}

func TestNewRejects(t *testing.T) {
	for _, rate := range []float64{0, -1, math.NaN(), math.Inf(1), math.Inf(-1), math.Nextafter(MaxRate, 2e9), math.Nextafter(MinRate, 0), 1e300, -1e-300} {
		_, err := New(rate)
		var re *RangeError
		if assert.True(t, errors.As(err, &re), "rate %v: %v", rate, err) {
			assert.Contains(t, err.Error(), "outside the representable range")
		}
	}
}

func TestElapsed(t *testing.T) {
	tests := []struct {
		start, now int64
		want       uint64
	}{
		{0, 0, 0},
		{10, 5, 0}, // backwards: no time
		{5, 10, 5},
		{math.MinInt64, math.MaxInt64, MaxElapsed}, // clamped
		{-1, math.MaxInt64, MaxElapsed},
		{math.MinInt64, -1, MaxElapsed},
		{math.MaxInt64, math.MinInt64, 0},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, Elapsed(tc.start, tc.now), "Elapsed(%d, %d)", tc.start, tc.now)
	}
}

func TestEarnedAndTimeOf(t *testing.T) {
	for _, rate := range []float64{MinRate, 1e-6, 0.5, 1, 3, 7.5, 1e6 / 3, 1e9 / 7, MaxRate} {
		s, err := New(rate)
		require.NoError(t, err)
		for _, e := range []uint64{0, 1, 2, 999_999_999, 1e9, 1e9 + 1, 1 << 40, 1 << 62, MaxElapsed - 1, MaxElapsed} {
			got := s.Earned(e)
			exact := exactEarned(e, rate)
			assert.True(t, new(big.Int).SetUint64(got).Cmp(exact) <= 0, "rate %v elapsed %d: earned %d > exact %v", rate, e, got, exact)
			assert.True(t, withinPrecision(got, exact), "rate %v elapsed %d: earned %d, exact %v", rate, e, got, exact)
			assert.LessOrEqual(t, s.TimeOf(got), e, "rate %v: TimeOf(Earned(%d))", rate, e)
			if next := s.TimeOf(got + 1); next != Never {
				assert.Greater(t, next, e, "rate %v: TimeOf(Earned(%d)+1)", rate, e)
			}
		}
	}
	s, _ := New(MinRate)
	assert.Equal(t, uint64(Never), s.TimeOf(2), "the 2nd token at MinRate is due after 2^63 ns")
	assert.Equal(t, uint64(1)<<62, s.TimeOf(1))
	assert.Equal(t, uint64(0), s.TimeOf(0))
}

func TestTake(t *testing.T) {
	s, err := New(10) // one token per 100 ms
	require.NoError(t, err)
	const ms = 1_000_000
	tests := []struct {
		name          string
		g, elapsed, n uint64
		capacity      uint64
		wantNext      uint64
		wantOK        bool
	}{
		{"new bucket, all", 0, 0, 5, 5, 5, true},
		{"new bucket, too many", 5, 0, 1, 5, 5, false},
		{"one earned", 5, 100 * ms, 1, 5, 6, true},
		{"1 ns early", 5, 100*ms - 1, 1, 5, 5, false},
		{"full after idle: forfeits", 5, 10_000 * ms, 5, 5, 105, true},
		{"partial: 3 held, 4 asked", 7, 500 * ms, 4, 5, 7, false},
		{"partial: 3 held, 3 asked", 7, 500 * ms, 3, 5, 10, true},
		{"huge elapsed", 0, MaxElapsed, 5, 5, s.Earned(MaxElapsed) + 5, true},
	}
	for _, tc := range tests {
		next, ok := s.Take(tc.g, tc.elapsed, tc.n, tc.capacity)
		assert.Equal(t, tc.wantOK, ok, tc.name)
		assert.Equal(t, tc.wantNext, next, tc.name)
	}
}

func TestTakeUpTo(t *testing.T) {
	s, err := New(10)
	require.NoError(t, err)
	const ms = 1_000_000
	tests := []struct {
		name                         string
		g, elapsed, lo, hi, capacity uint64
		wantNext, wantGot            uint64
	}{
		{"new: max", 0, 0, 1, 4, 10, 4, 4},
		{"holds 3, wants 2..5", 7, 0, 2, 5, 10, 10, 3},
		{"holds 3, wants 4..5", 7, 0, 4, 5, 10, 7, 0},
		{"holds 0", 10, 0, 1, 1, 10, 10, 0},
		{"full after idle", 10, 5000 * ms, 1, 3, 10, 53, 3},
	}
	for _, tc := range tests {
		next, got := s.TakeUpTo(tc.g, tc.elapsed, tc.lo, tc.hi, tc.capacity)
		assert.Equal(t, tc.wantGot, got, tc.name)
		assert.Equal(t, tc.wantNext, next, tc.name)
	}
}

func TestTokens(t *testing.T) {
	s, err := New(1)
	require.NoError(t, err)
	assert.Equal(t, uint64(10), s.Tokens(0, 0, 10))
	assert.Equal(t, uint64(0), s.Tokens(10, 0, 10))
	assert.Equal(t, uint64(2), s.Tokens(10, 2e9, 10))
	assert.Equal(t, uint64(10), s.Tokens(10, MaxElapsed, 10))
}

// FuzzNew checks that every accepted rate earns no faster than the exact
// rate, and no slower than one token behind it, at any elapsed time.
func FuzzNew(f *testing.F) {
	for _, r := range []float64{MinRate, MaxRate, 1, 3, 0.1, 1e6 / 3, math.Nextafter(MaxRate, 0), math.Nextafter(MinRate, 1), 0, -1, math.NaN(), math.Inf(1)} {
		f.Add(r, uint64(1e9))
	}
	f.Add(3.0, uint64(MaxElapsed))
	f.Add(9.44779104e+08, uint64(9223372036854775752)) // two tokens behind: the 2^-62 share at 8.7e18 tokens
	f.Fuzz(func(t *testing.T, rate float64, elapsed uint64) {
		s, err := New(rate)
		if math.IsNaN(rate) || rate < MinRate || rate > MaxRate {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.True(t, s.Valid())
		elapsed %= MaxElapsed + 1
		got := s.Earned(elapsed)
		exact := exactEarned(elapsed, rate)
		assert.True(t, new(big.Int).SetUint64(got).Cmp(exact) <= 0, "earned %d > exact %v", got, exact)
		assert.True(t, withinPrecision(got, exact), "earned %d, exact %v", got, exact)
		assert.LessOrEqual(t, s.TimeOf(got), elapsed)
		if next := s.TimeOf(got + 1); next != Never {
			assert.Greater(t, next, elapsed)
		}
	})
}

// FuzzTake drives Take with a random sequence of (advance, n) steps and
// compares it with two exact rational models.
//
// The grid model is what package refill documents: tokens are due at the
// fixed times k×1e9/rate after creation, and the bucket holds
// min(C, C - g + floor(rate × elapsed)). Take must never grant more than
// this model holds, and must grant whenever it holds n plus the schedule's
// rounding (at most 1 + one token in 2^62).
//
// The strict model is the textbook bucket, tokens = min(C, tokens + rate×dt),
// which throws away the partial token it is earning whenever it is full.
// The grid keeps that partial progress, so it may run ahead of the strict
// model by less than one token, never more: Take must never grant when the
// strict model holds n - 1 tokens or fewer.
func FuzzTake(f *testing.F) {
	f.Add(1.0, int64(10), []byte{0, 5, 200, 1, 3, 3, 255, 10})
	f.Add(float64(MaxRate), int64(MaxCapacity), []byte{255, 255, 0, 1})
	f.Add(float64(MinRate), int64(1), []byte{255, 1, 255, 1})
	f.Add(3.0, int64(3), []byte{1, 1, 2, 2, 3, 3, 100, 3})
	f.Add(210.0, int64(30), []byte{0xe2, '0', 'd', '0'}) // the grid runs ahead of the strict model
	f.Fuzz(func(t *testing.T, rate float64, capacity int64, steps []byte) {
		s, err := New(rate)
		if err != nil || capacity <= 0 || capacity > MaxCapacity {
			return
		}
		c := uint64(capacity)
		capRat := new(big.Rat).SetInt64(capacity)
		one := big.NewRat(1, 1)
		strict := new(big.Rat).Set(capRat) // tokens held, textbook model
		ratePerNs := new(big.Rat).Quo(new(big.Rat).SetFloat64(rate), big.NewRat(1e9, 1))
		var g, elapsed uint64
		for i := 0; i+1 < len(steps); i += 2 {
			// Advance by an exponentially distributed amount: 2^(b/4) ns.
			adv := uint64(1) << (steps[i] / 4)
			if steps[i] == 0 {
				adv = 0
			}
			if adv > MaxElapsed-elapsed {
				return
			}
			elapsed += adv
			strict.Add(strict, new(big.Rat).Mul(ratePerNs, new(big.Rat).SetInt(new(big.Int).SetUint64(adv))))
			if strict.Cmp(capRat) > 0 {
				strict.Set(capRat)
			}
			// Grid model: held = min(C, C - g + exact earned), at least 0.
			exact := exactEarned(elapsed, rate)
			held := new(big.Int).Add(big.NewInt(capacity), exact)
			held.Sub(held, new(big.Int).SetUint64(g))
			if held.Cmp(big.NewInt(capacity)) > 0 {
				held.SetInt64(capacity)
			}
			n := uint64(steps[i+1])%c + 1
			nInt := new(big.Int).SetUint64(n)
			nRat := new(big.Rat).SetInt(nInt)
			next, ok := s.Take(g, elapsed, n, c)
			if ok {
				require.True(t, held.Cmp(nInt) >= 0, "step %d: granted %d with the grid model holding %v", i/2, n, held)
				require.True(t, new(big.Rat).Add(strict, one).Cmp(nRat) > 0, "step %d: granted %d with the strict model holding %v", i/2, n, strict.FloatString(3))
				g = next
				strict.Sub(strict, nRat)
				if strict.Sign() < 0 {
					strict.SetInt64(0) // the grid ran ahead by a fraction
				}
			} else {
				require.Equal(t, g, next, "a denial must not change the state")
				slack := new(big.Int).Rsh(exact, 62)
				slack.Add(slack, big.NewInt(1))
				require.True(t, held.Cmp(new(big.Int).Add(nInt, slack)) < 0, "step %d: denied %d with the grid model holding %v", i/2, n, held)
			}
		}
	})
}

// TestTakeEarnedAgreesWithTake: TakeEarned given Earned(elapsed) decides
// exactly as Take, on schedules and states drawn at random around the
// boundaries where the two could disagree.
func TestTakeEarnedAgreesWithTake(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rates := []float64{1e-3, 0.7, 3, 10, 1000, 1e6 / 3, 1e9 / 7, 1e9}
	for _, rate := range rates {
		s, err := New(rate)
		require.NoError(t, err)
		for range 20000 {
			capacity := uint64(1) + rng.Uint64N(1000)
			elapsed := rng.Uint64N(1 << 40)
			earned := s.Earned(elapsed)
			// g near earned and near earned+capacity, where the branches switch.
			g := earned + capacity - min(earned+capacity, rng.Uint64N(2*capacity+2))
			n := uint64(1) + rng.Uint64N(capacity)
			wantNext, wantOK := s.Take(g, elapsed, n, capacity)
			gotNext, gotOK := s.TakeEarned(g, earned, n, capacity)
			require.Equal(t, wantOK, gotOK, "rate %v g %d elapsed %d n %d cap %d", rate, g, elapsed, n, capacity)
			require.Equal(t, wantNext, gotNext, "rate %v g %d elapsed %d n %d cap %d", rate, g, elapsed, n, capacity)
		}
	}
}

// TestReachedAgreesWithTimeOf: Reached, which compares 128-bit products,
// decides exactly as TimeOf and Earned do, at the boundaries (k one below,
// at and above Earned(elapsed)) and at the ends of the range, where
// TimeOf rounds or returns Never.
func TestReachedAgreesWithTimeOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rates := []float64{MinRate, 1e-3, 0.7, 3, 10, 1000, 1e6 / 3, 1e9 / 7, MaxRate}
	var schedules []Schedule
	for _, rate := range rates {
		s, err := New(rate)
		require.NoError(t, err)
		schedules = append(schedules, s)
	}
	// Valid schedules New would not make from these rates: both ends of
	// Interval's range, and random ones, with every Shift.
	for shift := uint(0); shift <= 62; shift++ {
		schedules = append(schedules,
			Schedule{Interval: 1 << 62, Shift: shift},
			Schedule{Interval: 1 << 63, Shift: shift},
			Schedule{Interval: 1<<62 + rng.Uint64N(1<<62), Shift: shift})
	}
	for _, s := range schedules {
		require.True(t, s.Valid(), "%+v", s)
		rate := s.Rate()
		elapsedValues := []uint64{0, 1, MaxElapsed - 1, MaxElapsed}
		for range 1000 {
			elapsedValues = append(elapsedValues, rng.Uint64N(MaxElapsed), rng.Uint64N(1<<40))
			// Exactly when a token is due, and one nanosecond before.
			if due := s.TimeOf(rng.Uint64N(1 << 30)); due != Never && due > 0 {
				elapsedValues = append(elapsedValues, due, due-1)
			}
		}
		for _, elapsed := range elapsedValues {
			earned := s.Earned(elapsed)
			for _, k := range []uint64{0, max(earned, 1) - 1, earned, earned + 1, earned + 2, math.MaxUint64} {
				// Plain comparisons, testify only on failure: this loop runs
				// millions of times, also under -race.
				got := s.Reached(elapsed, k)
				if want := elapsed >= s.TimeOf(k); got != want {
					require.Failf(t, "Reached disagrees with TimeOf", "%+v (rate %v) elapsed %d k %d: Reached %v, elapsed >= TimeOf %v", s, rate, elapsed, k, got, want)
				}
				if want := earned >= k; got != want {
					require.Failf(t, "Reached disagrees with Earned", "%+v (rate %v) elapsed %d k %d: Reached %v, Earned >= k %v", s, rate, elapsed, k, got, want)
				}
			}
		}
	}
}
