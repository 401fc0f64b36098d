package contend_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/contend-lab/contend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestManualClock(t *testing.T) {
	c := contend.NewManualClock(100)
	assert.Equal(t, int64(100), c.Now())
	assert.True(t, c.Advance(50))
	assert.Equal(t, int64(150), c.Now())
	assert.False(t, c.Advance(-1), "a negative advance is refused")
	assert.Equal(t, int64(150), c.Now())
	assert.False(t, c.Set(149), "setting an earlier reading is refused")
	assert.True(t, c.Set(1000))
	assert.Equal(t, int64(1000), c.Now())
	assert.True(t, c.Advance(math.MaxInt64))
	assert.Equal(t, int64(math.MaxInt64), c.Now(), "the reading saturates instead of wrapping")
	var zero contend.ManualClock
	assert.Equal(t, int64(0), zero.Now())
}

func TestMonotonicClockNeverDecreases(t *testing.T) {
	prev := contend.DefaultClock.Now()
	for i := 0; i < 100_000; i++ {
		now := contend.DefaultClock.Now()
		require.GreaterOrEqual(t, now, prev)
		prev = now
	}
}

func TestMonotonicClockFollowsSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		before := contend.DefaultClock.Now()
		time.Sleep(90 * time.Minute)
		assert.Equal(t, int64(90*time.Minute), contend.DefaultClock.Now()-before)
	})
}

func TestBucketConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    contend.BucketConfig
		field  string // "" when valid
		reason string
	}{
		{"smallest", contend.BucketConfig{Capacity: 1, Rate: contend.MinRate}, "", ""},
		{"largest", contend.BucketConfig{Capacity: contend.MaxCapacity, Rate: contend.MaxRate}, "", ""},
		{"zero capacity", contend.BucketConfig{Capacity: 0, Rate: 1}, "Capacity", "at least 1"},
		{"negative capacity", contend.BucketConfig{Capacity: -5, Rate: 1}, "Capacity", "at least 1"},
		{"capacity too large", contend.BucketConfig{Capacity: contend.MaxCapacity + 1, Rate: 1}, "Capacity", "at most"},
		{"NaN rate", contend.BucketConfig{Capacity: 1, Rate: math.NaN()}, "Rate", "not a number"},
		{"infinite rate", contend.BucketConfig{Capacity: 1, Rate: math.Inf(1)}, "Rate", "finite"},
		{"negative infinite rate", contend.BucketConfig{Capacity: 1, Rate: math.Inf(-1)}, "Rate", "finite"},
		{"zero rate", contend.BucketConfig{Capacity: 1, Rate: 0}, "Rate", "positive"},
		{"negative rate", contend.BucketConfig{Capacity: 1, Rate: -1}, "Rate", "positive"},
		{"rate too small", contend.BucketConfig{Capacity: 1, Rate: contend.MinRate / 2}, "Rate", "smallest"},
		{"rate too large", contend.BucketConfig{Capacity: 1, Rate: 2e9}, "Rate", "largest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				assert.NoError(t, err)
				return
			}
			var ce *contend.ConfigError
			require.True(t, errors.As(err, &ce), "want a *ConfigError, got %v", err)
			assert.Equal(t, tc.field, ce.Field)
			assert.Contains(t, err.Error(), "BucketConfig."+tc.field)
			assert.Contains(t, err.Error(), tc.reason)
			assert.True(t, strings.HasPrefix(err.Error(), "contend: "))
		})
	}
}

func TestClockOrDefault(t *testing.T) {
	assert.Equal(t, contend.DefaultClock, contend.BucketConfig{}.ClockOrDefault())
	m := contend.NewManualClock(0)
	assert.Same(t, m, contend.BucketConfig{Clock: m}.ClockOrDefault())
}
