package zklab_test

import (
	"context"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/linearize"
	"github.com/contend-lab/contend/remote/zklab"
)

func newSemaphoreOn(t *testing.T, eps []string, path string, capacity int64) *zklab.Semaphore {
	t.Helper()
	s, err := zklab.NewSemaphore(dial(t, eps, session), path, capacity)
	require.NoError(t, err)
	return s
}

// acquireAsync starts s.Acquire(n) and returns where its lease will be
// sent (nil if it failed).
func acquireAsync(t *testing.T, s *zklab.Semaphore, n int64) <-chan contend.Lease {
	got := make(chan contend.Lease, 1)
	go func() {
		lease, err := s.Acquire(within(t, 10*time.Second), n)
		assert.NoError(t, err)
		got <- lease
	}()
	return got
}

// queueLen waits until the queue under path has n nodes.
func queueLen(t *testing.T, c *zklab.Client, path string, n int) {
	t.Helper()
	require.True(t, eventually(5*time.Second, func() bool { return len(children(t, c, path)) == n }),
		"the queue never had %d nodes: %v", n, children(t, c, path))
}

func notYet(t *testing.T, got <-chan contend.Lease, what string) {
	t.Helper()
	select {
	case <-got:
		t.Fatalf("%s acquired too early", what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestSemaphoreContract(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it

	t.Run("permits, release, release again", func(t *testing.T) {
		s, err := zklab.NewSemaphore(c, newPath(t), 4)
		require.NoError(t, err)
		assert.Equal(t, int64(4), s.Capacity())
		a, err := s.Acquire(ctx, 3)
		require.NoError(t, err)
		b, err := s.TryAcquire(ctx, 1)
		require.NoError(t, err)
		assert.Greater(t, b.Token(), a.Token())
		_, err = s.TryAcquire(ctx, 1)
		assert.ErrorIs(t, err, contend.ErrHeld)
		require.NoError(t, a.Release(ctx))
		assert.ErrorIs(t, a.Release(ctx), contend.ErrNotHeld)
		c3, err := s.TryAcquire(ctx, 3)
		require.NoError(t, err)
		assert.Greater(t, c3.Token(), b.Token())
		require.NoError(t, b.Release(ctx))
		require.NoError(t, c3.Release(ctx))
		assert.Empty(t, children(t, c, s.Path()))
	})

	t.Run("impossible requests are PermitErrors at once", func(t *testing.T) {
		s, err := zklab.NewSemaphore(c, newPath(t), 2)
		require.NoError(t, err)
		for _, n := range []int64{0, -1, 3} {
			for _, cx := range []context.Context{ctx, done()} {
				var pe *contend.PermitError
				_, err := s.Acquire(cx, n)
				assert.ErrorAs(t, err, &pe, "Acquire(%d)", n)
				_, err = s.TryAcquire(cx, n)
				assert.ErrorAs(t, err, &pe, "TryAcquire(%d)", n)
			}
		}
		assert.Empty(t, children(t, c, s.Path()))
	})

	t.Run("a ctx done at the call fails even with permits free", func(t *testing.T) {
		s, err := zklab.NewSemaphore(c, newPath(t), 2)
		require.NoError(t, err)
		_, err = s.Acquire(done(), 1)
		assert.ErrorIs(t, err, context.Canceled)
		_, err = s.TryAcquire(done(), 1)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, children(t, c, s.Path()))
	})

	t.Run("FIFO: a large request blocks smaller ones behind it", func(t *testing.T) {
		path := newPath(t)
		s := newSemaphoreOn(t, eps, path, 4)
		held, err := s.Acquire(ctx, 3)
		require.NoError(t, err)
		big := acquireAsync(t, newSemaphoreOn(t, eps, path, 4), 2)
		queueLen(t, c, path, 2)
		_, err = s.TryAcquire(ctx, 1)
		assert.ErrorIs(t, err, contend.ErrHeld, "a TryAcquire that fits must not overtake a waiter")
		small := acquireAsync(t, newSemaphoreOn(t, eps, path, 4), 1)
		queueLen(t, c, path, 3)
		notYet(t, small, "a request behind a waiting one")
		require.NoError(t, held.Release(ctx))
		b, sm := <-big, <-small
		require.NotNil(t, b)
		require.NotNil(t, sm)
		assert.Greater(t, sm.Token(), b.Token())
		require.NoError(t, b.Release(ctx))
		require.NoError(t, sm.Release(ctx))
	})

	t.Run("a new holder wakes the waiter behind it", func(t *testing.T) {
		// Capacity 2, two holders of 1; w1 is the first waiter (it
		// watches the queue), w2 waits behind it (it watches w1). When h1
		// goes, w1 holds and must wake w2, which becomes the first waiter;
		// when h2 goes, w2 holds, though w1 still does.
		path := newPath(t)
		s := newSemaphoreOn(t, eps, path, 2)
		h1, err := s.Acquire(ctx, 1)
		require.NoError(t, err)
		h2, err := s.Acquire(ctx, 1)
		require.NoError(t, err)
		w1 := acquireAsync(t, newSemaphoreOn(t, eps, path, 2), 1)
		queueLen(t, c, path, 3)
		w2 := acquireAsync(t, newSemaphoreOn(t, eps, path, 2), 1)
		queueLen(t, c, path, 4)
		require.NoError(t, h1.Release(ctx))
		l1 := <-w1
		require.NotNil(t, l1)
		notYet(t, w2, "the second waiter")
		require.NoError(t, h2.Release(ctx))
		select {
		case l2 := <-w2:
			require.NotNil(t, l2)
			require.NoError(t, l2.Release(ctx))
		case <-time.After(5 * time.Second):
			t.Fatal("the second waiter was never woken")
		}
		require.NoError(t, l1.Release(ctx))
	})
}

func TestSemaphoreSetup(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	path := newPath(t)
	_, err := zklab.NewSemaphore(c, path, 3)
	require.NoError(t, err)
	_, err = zklab.NewSemaphore(c, path, 3)
	assert.NoError(t, err, "a second semaphore of the same capacity")
	_, err = zklab.NewSemaphore(c, path, 4)
	assert.ErrorIs(t, err, zklab.ErrPathInUse, "capacities disagree")
	lock, err := zklab.NewLock(c, newPath(t))
	require.NoError(t, err)
	_, err = zklab.NewSemaphore(c, lock.Path(), 3)
	assert.ErrorIs(t, err, zklab.ErrPathInUse, "a lock's path")

	for _, capacity := range []int64{0, -1, zklab.MaxCapacity + 1} {
		var ce *contend.ConfigError
		_, err = zklab.NewSemaphore(c, newPath(t), capacity)
		assert.ErrorAs(t, err, &ce, "capacity %d", capacity)
		_, err = zklab.NewSemaphoreAt(eps, "k", capacity, session)
		assert.ErrorAs(t, err, &ce, "capacity %d", capacity)
	}
	_, err = zklab.NewSemaphore(nil, newPath(t), 1)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zklab.NewSemaphore(c, "bad", 1)
	assert.ErrorIs(t, err, zklab.ErrBadPath)
	_, err = zklab.NewSemaphoreAt(eps, "a/b", 1, session)
	assert.ErrorIs(t, err, zklab.ErrBadPath)

	var zero zklab.Semaphore
	_, err = zero.Acquire(context.Background(), 1)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zero.TryAcquire(context.Background(), 1)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	assert.ErrorIs(t, zero.Close(), contend.ErrNotConstructed)

	owned, err := zklab.NewSemaphoreAt(eps, "owned-sem", 2, session)
	require.NoError(t, err)
	lease, err := owned.Acquire(within(t, time.Minute), 2)
	require.NoError(t, err)
	require.NoError(t, owned.Close())
	_, err = owned.Acquire(context.Background(), 1)
	assert.ErrorIs(t, err, zklab.ErrClosed)
	assert.ErrorIs(t, lease.Release(context.Background()), contend.ErrNotHeld)
}

// TestSemaphoreStress runs the harness's capacity checker with 50
// goroutines asking for 1 to 3 of 4 permits, on one session.
func TestSemaphoreStress(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	s, err := zklab.NewSemaphore(c, newPath(t), 4)
	require.NoError(t, err)
	run, err := contendtest.RunSemaphore(s, 50, 500*time.Millisecond, func(g int) int64 { return int64(g%3 + 1) })
	require.NoError(t, err)
	t.Logf("%d acquisitions, at most %d of 4 held, %d round trips", run.Acquisitions, run.MaxHeld, s.RoundTrips())
	assert.Positive(t, run.Acquisitions)
	assert.Zero(t, run.Overflows)
	assert.LessOrEqual(t, run.MaxHeld, int64(4))
	require.NoError(t, s.Settle(within(t, 10*time.Second)))
	assert.Empty(t, children(t, c, s.Path()), "cancelled waiters left their nodes")
}

// TestSemaphoreLinearizable checks histories by 4 clients asking for 1 to
// 3 of 4 permits, each on its own session, with linearize's model.
func TestSemaphoreLinearizable(t *testing.T) {
	eps := standalone(t)
	path := newPath(t)
	sems := make([]*zklab.Semaphore, 4)
	for i := range sems {
		sems[i] = newSemaphoreOn(t, eps, path, 4)
	}
	model, err := linearize.NewSemaphore(4)
	require.NoError(t, err)
	for range 3 {
		h, err := contendtest.RecordSemaphore(&rrSem{sems: sems}, len(sems), 15, func(g int) int64 { return int64(g%3 + 1) })
		require.NoError(t, err)
		v, err := linearize.Check(model, h, 30*time.Second, t.TempDir(), "zklab-semaphore")
		require.NoError(t, err)
		assert.Equal(t, porcupine.Ok, v.Result, "history of %d operations; drawn in %s", v.Ops, v.Visualization)
	}
}

// rrSem is roundRobin for semaphores.
type rrSem struct {
	sems []*zklab.Semaphore
	r    rr
}

func (r *rrSem) pick() *zklab.Semaphore {
	r.r.mu.Lock()
	defer r.r.mu.Unlock()
	r.r.next++
	return r.sems[r.r.next%len(r.sems)]
}

func (r *rrSem) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	return r.pick().Acquire(ctx, n)
}

func (r *rrSem) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	return r.pick().TryAcquire(ctx, n)
}

func (r *rrSem) Capacity() int64 { return r.sems[0].Capacity() }

// TestSemaphoreTryAcquireLeavesWithoutPhantom is the lock's test for a
// semaphore: a TryAcquire that saw no room, and is slow to leave while
// room is made, must take the permits.
func TestSemaphoreTryAcquireLeavesWithoutPhantom(t *testing.T) {
	eps := standalone(t)
	path := newPath(t)
	s := newSemaphoreOn(t, eps, path, 2)
	other := newSemaphoreOn(t, eps, path, 2)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	holder, err := s.Acquire(ctx, 2)
	require.NoError(t, err)
	stalled, resume := make(chan struct{}), make(chan struct{})
	zklab.SetBeforeLeave(func() {
		zklab.SetBeforeLeave(nil)
		close(stalled)
		<-resume
	})
	t.Cleanup(func() { zklab.SetBeforeLeave(nil) })
	slow := make(chan error, 1)
	var got contend.Lease
	go func() {
		var err error
		got, err = s.TryAcquire(ctx, 2)
		slow <- err
	}()
	select {
	case <-stalled:
	case err := <-slow:
		t.Fatalf("the TryAcquire returned %v without trying to leave", err)
	}
	require.NoError(t, holder.Release(ctx))
	_, err = other.TryAcquire(ctx, 1)
	assert.ErrorIs(t, err, contend.ErrHeld)
	close(resume)
	require.NoError(t, <-slow, "the slow TryAcquire left the permits to nobody")
	require.NoError(t, got.Release(ctx))
}

// TestSemaphoreSessionExpiry: a holder's permits come back when its session
// expires, and its lease says it is over.
func TestSemaphoreSessionExpiry(t *testing.T) {
	eps := standalone(t)
	a := dial(t, eps, session)
	s, err := zklab.NewSemaphore(a, newPath(t), 3)
	require.NoError(t, err)
	other := newSemaphoreOn(t, eps, s.Path(), 3)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	lease, err := s.Acquire(ctx, 3)
	require.NoError(t, err)
	_, err = other.TryAcquire(ctx, 1)
	require.ErrorIs(t, err, contend.ErrHeld)
	require.NoError(t, a.ExpireSession(within(t, 10*time.Second)))
	ttl, _ := lease.TTL()
	assert.Zero(t, ttl)
	assert.ErrorIs(t, lease.Release(ctx), contend.ErrNotHeld)
	next, err := other.TryAcquire(ctx, 3)
	require.NoError(t, err)
	assert.Greater(t, next.Token(), lease.Token())
	require.NoError(t, next.Release(ctx))
}
