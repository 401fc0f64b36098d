package etcdlab

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

// TestSemaphore runs the semaphore's contract on one etcd member.
func TestSemaphore(t *testing.T) {
	cl := startSingle(t)
	eps := cl.Endpoints()
	raw := rawClient(t, eps)
	c := watchOnly(newTestClient(t, eps, 2*time.Second))
	other := watchOnly(newTestClient(t, eps, 2*time.Second))

	newSem := func(t *testing.T, c *Client, capacity int64) *Semaphore {
		s, err := NewSemaphore(c, t.Name(), capacity)
		require.NoError(t, err)
		return s
	}
	semAsync := func(ctx context.Context, s *Semaphore, n int64) <-chan result {
		return acquireAsync(func() (*Lease, error) {
			lease, err := s.Acquire(ctx, n)
			if err != nil {
				return nil, err
			}
			return lease.(*Lease), nil
		})
	}

	t.Run("basics", func(t *testing.T) {
		s := newSem(t, c, 3)
		assert.Equal(t, int64(3), s.Capacity())
		a, err := s.Acquire(ctxFor(t, waitLimit), 2)
		require.NoError(t, err)
		b, err := newSem(t, other, 3).TryAcquire(bg, 1)
		require.NoError(t, err, "1 of 3 permits is free")
		assert.Greater(t, b.Token(), a.Token())
		_, err = s.TryAcquire(bg, 1)
		assert.ErrorIs(t, err, contend.ErrHeld, "all 3 permits are held")
		require.NoError(t, a.Release(bg))
		assert.ErrorIs(t, a.Release(bg), contend.ErrNotHeld)
		full, err := s.TryAcquire(bg, 2)
		require.NoError(t, err, "2 of 3 free again")
		assert.Greater(t, full.Token(), b.Token())
		require.NoError(t, full.Release(bg))
		require.NoError(t, b.Release(bg))
		all, err := s.TryAcquire(bg, 3)
		require.NoError(t, err)
		require.NoError(t, all.Release(bg))
		assert.Empty(t, queued(t, raw, t.Name()))
	})

	t.Run("fifo", func(t *testing.T) {
		// With 2 of 3 permits held, a waiter for 2 queues; 1 permit is free,
		// but a smaller request may not overtake it, neither TryAcquire nor
		// Acquire. When the 2 are released, both fit (2 + 1 <= 3).
		s := newSem(t, c, 3)
		a, err := s.Acquire(ctxFor(t, waitLimit), 2)
		require.NoError(t, err)
		big := semAsync(ctxFor(t, waitLimit), s, 2)
		waitQueued(t, raw, t.Name(), 2)
		_, err = s.TryAcquire(bg, 1)
		assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire overtook a waiter")
		small := semAsync(ctxFor(t, waitLimit), newSem(t, other, 3), 1)
		waitQueued(t, raw, t.Name(), 3)
		pending(t, small, 200*time.Millisecond, "the small request behind a large one")
		pending(t, big, 0, "the large request")
		require.NoError(t, a.Release(bg))
		rb := within(t, big, 3*time.Second, "the large request")
		require.NoError(t, rb.err)
		rs := within(t, small, 3*time.Second, "the small request")
		require.NoError(t, rs.err)
		assert.Greater(t, rs.lease.Token(), rb.lease.Token(), "tokens follow the queue")
		require.NoError(t, rb.lease.Release(bg))
		require.NoError(t, rs.lease.Release(bg))
	})

	t.Run("cancelled-before-release", func(t *testing.T) {
		// x/sync's TestWeightedAcquireCanceled: 1 of 2 held, Acquire(2)
		// queues, its ctx is cancelled, then the permit is released: the
		// Acquire must fail and leave both permits free.
		s := newSem(t, c, 2)
		for range 5 {
			held, err := s.Acquire(ctxFor(t, waitLimit), 1)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(bg)
			w := semAsync(ctx, s, 2)
			waitQueued(t, raw, t.Name(), 2)
			cancel()
			require.NoError(t, held.Release(bg))
			assert.ErrorIs(t, within(t, w, 3*time.Second, "the cancelled waiter").err, context.Canceled)
			settle(t, c)
			assert.Empty(t, queued(t, raw, t.Name()), "the cancelled waiter's key is still queued")
			all, err := s.TryAcquire(bg, 2)
			require.NoError(t, err, "permits left held")
			require.NoError(t, all.Release(bg))
		}
		done, cancel := context.WithCancel(bg)
		cancel()
		_, err := s.Acquire(done, 1)
		assert.ErrorIs(t, err, context.Canceled, "Acquire with a done ctx and every permit free")
		_, err = s.TryAcquire(done, 1)
		assert.ErrorIs(t, err, context.Canceled)
	})

	t.Run("leaving-waiter-ahead", func(t *testing.T) {
		// Capacity 2: A holds 2; B waits for 1, C for 2. B leaves: C's
		// count of permits ahead drops to 2, which still does not fit.
		// When A releases, C holds.
		s := newSem(t, c, 2)
		a, err := s.Acquire(ctxFor(t, waitLimit), 2)
		require.NoError(t, err)
		bctx, cancelB := context.WithCancel(bg)
		b := semAsync(bctx, s, 1)
		waitQueued(t, raw, t.Name(), 2)
		cc := semAsync(ctxFor(t, waitLimit), newSem(t, other, 2), 2)
		waitQueued(t, raw, t.Name(), 3)
		cancelB()
		assert.ErrorIs(t, within(t, b, 3*time.Second, "B").err, context.Canceled)
		waitQueued(t, raw, t.Name(), 2)
		pending(t, cc, 300*time.Millisecond, "C while A holds every permit")
		require.NoError(t, a.Release(bg))
		r := within(t, cc, 3*time.Second, "C after A's release")
		require.NoError(t, r.err)
		require.NoError(t, r.lease.Release(bg))
	})

	t.Run("capacity-mismatch", func(t *testing.T) {
		s := newSem(t, c, 3)
		lease, err := s.TryAcquire(bg, 1)
		require.NoError(t, err)
		require.NoError(t, lease.Release(bg))
		wrong := newSem(t, other, 4)
		_, err = wrong.Acquire(ctxFor(t, 5*time.Second), 1)
		assert.ErrorIs(t, err, ErrCapacityMismatch)
		_, err = wrong.TryAcquire(bg, 1)
		assert.ErrorIs(t, err, ErrCapacityMismatch)
		assert.Empty(t, queued(t, raw, t.Name()), "a refused instance queued a key")

		// The first instance on a fresh prefix records its capacity, even
		// from TryAcquire on a busy queue.
		fresh := newSem(t, other, 4)
		_, err = raw.Delete(bg, fresh.meta())
		require.NoError(t, err)
		lease, err = fresh.TryAcquire(bg, 4)
		require.NoError(t, err)
		_, err = newSem(t, c, 3).TryAcquire(bg, 1)
		assert.ErrorIs(t, err, ErrCapacityMismatch)
		require.NoError(t, lease.Release(bg))
	})

	t.Run("expiry-returns-permits", func(t *testing.T) {
		stale := newTestClient(t, eps, time.Second)
		old, err := newSem(t, stale, 2).Acquire(ctxFor(t, waitLimit), 2)
		require.NoError(t, err)
		w := semAsync(ctxFor(t, waitLimit), newSem(t, c, 2), 1)
		pending(t, w, 200*time.Millisecond, "a waiter while the lease is refreshed")
		stale.Orphan()
		r := within(t, w, 5*time.Second, "the waiter after the holder's lease expired")
		require.NoError(t, r.err)
		assert.Greater(t, r.lease.Token(), old.Token())
		assert.ErrorIs(t, old.(*Lease).FencedPut(bg, t.Name()+"-resource", "stale"), ErrFenced)
		assert.NoError(t, r.lease.FencedPut(bg, t.Name()+"-resource", "fresh"))
		assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld)
		require.NoError(t, r.lease.Release(bg))
	})
}

func TestPermitSum(t *testing.T) {
	var s permitSum
	s.add(math.MaxInt64)
	s.add(math.MaxInt64)
	s.add(2)
	assert.False(t, s.atMost(math.MaxInt64), "2^64 counted as fitting")
	s.sub(math.MaxInt64) // 2^63 + 1 left
	assert.False(t, s.atMost(math.MaxInt64))
	s.sub(math.MaxInt64)
	assert.True(t, s.atMost(2))
	assert.False(t, s.atMost(1))
	s.sub(2)
	assert.True(t, s.atMost(0))
	assert.Equal(t, permitSum{}, s)
}
