package cas

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withGrants returns a semaphore of capacity permits whose grant count
// stands at grants, so that the carry into the next epoch can be reached
// without 2^32 grants.
func withGrants(t *testing.T, capacity int64, grants uint64) *Semaphore {
	t.Helper()
	s, err := NewSemaphore(capacity)
	require.NoError(t, err)
	s.epoch.Store(grants &^ (epoch - 1))
	s.state.Store(uint64(capacity) | grants%epoch*grantOne)
	return s
}

// TestSemaphoreTokensCarry: tokens go on counting by one across the carry
// out of the state word's 32-bit grant field, on the fast path (which
// takes the lock for it) and when a Release serves a waiter.
func TestSemaphoreTokensCarry(t *testing.T) {
	ctx := context.Background()
	last := uint64(epoch - 1) // the largest token of epoch 0
	t.Run("fast path", func(t *testing.T) {
		s := withGrants(t, 4, last-2)
		for want := last - 1; want <= last+2; want++ {
			l, err := s.TryAcquire(ctx, 1)
			require.NoError(t, err)
			assert.Equal(t, want, l.Token())
			require.NoError(t, l.Release(ctx))
		}
		assert.Equal(t, uint64(4), s.state.Load()&freeMask, "every permit free again")
	})
	t.Run("served waiter", func(t *testing.T) {
		s := withGrants(t, 2, last-1)
		holder, err := s.Acquire(ctx, 2)
		require.NoError(t, err)
		assert.Equal(t, last, holder.Token())
		got := make(chan uint64)
		go func() {
			l, err := s.Acquire(ctx, 1)
			if err != nil {
				close(got)
				return
			}
			got <- l.Token()
		}()
		require.Eventually(t, func() bool { return s.state.Load()&queued != 0 }, time.Second, time.Millisecond, "the waiter never queued")
		require.NoError(t, holder.Release(ctx))
		assert.Equal(t, last+1, <-got, "the waiter served by the Release carries into epoch 1")
		l, err := s.Acquire(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, last+2, l.Token())
		assert.Zero(t, s.state.Load()&queued)
	})
}
