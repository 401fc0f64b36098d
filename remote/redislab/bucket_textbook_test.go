package redislab

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/contend-lab/contend/internal/redistest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/textbook"
)

// statedRate returns the rate the Redis bucket states it runs at: 1e9/T
// tokens per second, with T = ceil(1e9/rate) whole nanoseconds.
func statedRate(t *testing.T, rate float64) *big.Rat {
	t.Helper()
	ns, err := emissionInterval(rate)
	require.NoError(t, err)
	return big.NewRat(1e9, ns)
}

// TestBucketMatchesTextbook replays the lab's differential cases through the
// Redis bucket, with readings passed to the script instead of TIME, and
// holds every decision to the textbook bucket at the stated rate: no
// tolerance at all, since the readings are whole nanoseconds and so is T.
// Cases beyond the bucket's range (Capacity/Rate above 2^52 ns) are skipped
// by name.
func TestBucketMatchesTextbook(t *testing.T) {
	_, client := redistest.Server(t)
	ctx := redistest.Ctx(t, 2*time.Minute)
	const start = 1_700_000_000 * 1e9 // a wall-clock-like reading
	for i, c := range textbook.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			for seed := range uint64(2) {
				b, err := NewBucket(client, fmt.Sprintf("textbook:%d:%d", i, seed), contend.BucketConfig{Capacity: c.Capacity, Rate: c.Rate})
				if err != nil {
					var ce *contend.ConfigError
					require.ErrorAs(t, err, &ce)
					t.Skipf("outside the Redis bucket's range: %v", err)
				}
				var takeErr error
				res, err := textbook.Replay(c, statedRate(t, c.Rate), 0, seed, 150, start, func(now, n int64) bool {
					ok, err := b.take(ctx, n, now/1e9, now%1e9)
					if err != nil && takeErr == nil {
						takeErr = err
					}
					return ok
				})
				require.NoError(t, err)
				require.NoError(t, takeErr)
				assert.Zero(t, res.OverGrants, res.FirstWrong)
				assert.Zero(t, res.WrongDenials, res.FirstWrong)
				assert.Zero(t, res.Tolerated)
				assert.LessOrEqual(t, res.WindowExcess, 0.0)
			}
		})
	}
}

// TestBucketRegressionTable: capacity 1 at 1/s, the table of the issue that
// made "exact" mean the textbook bucket, on the Redis bucket.
func TestBucketRegressionTable(t *testing.T) {
	_, client := redistest.Server(t)
	ctx := redistest.Ctx(t, 10*time.Second)
	b, err := NewBucket(client, "regression", contend.BucketConfig{Capacity: 1, Rate: 1})
	require.NoError(t, err)
	const start = 1_700_000_000
	for _, s := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {1500 * time.Millisecond, true}, {2 * time.Second, false}, {2900 * time.Millisecond, true}, {3 * time.Second, false}} {
		ok, err := b.take(ctx, 1, start+int64(s.at/time.Second), int64(s.at%time.Second))
		require.NoError(t, err)
		assert.Equal(t, s.want, ok, "at %v", s.at)
	}
}

// TestBucketRounding pins the stated rounding of the emission interval:
// whole nanoseconds, rounded up, so the stated rate is never above Rate,
// equal to it when 1e9/Rate is whole, and below it by less than one part in
// T; near MaxRate that is up to half a token per interval.
func TestBucketRounding(t *testing.T) {
	tests := []struct {
		rate float64
		ns   int64
	}{
		{1, 1e9}, {10, 1e8}, {1000, 1e6}, {0.5, 2e9}, {contend.MaxRate, 1},
		{3, 333_333_334}, {7.5, 133_333_334}, {1e9 / 1.5, 2}, {1234.5678, 810_001},
		// float64 cannot hold 1/60 or 1e6/3: 1e9 over it is just above a whole number.
		{1.0 / 60, 60_000_000_001}, {1e6 / 3, 3001},
	}
	for _, tc := range tests {
		ns, err := emissionInterval(tc.rate)
		require.NoError(t, err)
		assert.Equal(t, tc.ns, ns, "rate %v", tc.rate)
		exact := new(big.Rat).Quo(big.NewRat(1e9, 1), new(big.Rat).SetFloat64(tc.rate))
		stated := big.NewRat(ns, 1)
		assert.True(t, stated.Cmp(exact) >= 0, "rate %v: rounded down", tc.rate)
		// T - exact < 1 ns: the stated rate is lower by less than 1/T.
		assert.True(t, new(big.Rat).Sub(stated, exact).Cmp(big.NewRat(1, 1)) < 0, "rate %v: rounded by a whole ns or more", tc.rate)
	}
}
