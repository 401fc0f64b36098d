package contend_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

// TestManualClockSleepUntil: a sleeper wakes when Advance or Set reaches
// its reading, not before; one whose reading has come returns at once; a
// cancelled one returns ctx.Err(); the zero value works.
func TestManualClockSleepUntil(t *testing.T) {
	var _ contend.Sleeper = (*contend.ManualClock)(nil)
	synctest.Test(t, func(t *testing.T) {
		var clk contend.ManualClock // the zero value
		sleep := func(ctx context.Context, until int64) (*atomic.Bool, *error) {
			var done atomic.Bool
			var err error
			go func() {
				err = clk.SleepUntil(ctx, until)
				done.Store(true)
			}()
			synctest.Wait()
			return &done, &err
		}
		ctx := context.Background()
		a, aerr := sleep(ctx, 100)
		b, _ := sleep(ctx, 200)
		cctx, cancel := context.WithCancel(ctx)
		c, cerr := sleep(cctx, 300)
		assert.False(t, a.Load() || b.Load() || c.Load(), "all asleep at 0")
		require.True(t, clk.Advance(99))
		synctest.Wait()
		assert.False(t, a.Load(), "99 < 100")
		require.True(t, clk.Advance(1))
		synctest.Wait()
		assert.True(t, a.Load(), "100")
		assert.NoError(t, *aerr)
		assert.False(t, b.Load())
		require.True(t, clk.Set(250))
		synctest.Wait()
		assert.True(t, b.Load(), "Set wakes too")
		cancel()
		synctest.Wait()
		assert.True(t, c.Load())
		assert.ErrorIs(t, *cerr, context.Canceled)
		start := time.Now()
		assert.NoError(t, clk.SleepUntil(ctx, 250), "the reading has come")
		assert.NoError(t, clk.SleepUntil(cctx, 10), "even on a done ctx")
		assert.Zero(t, time.Since(start))
	})
}
