package zklab_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/zkserver"
	"github.com/contend-lab/contend/linearize"
	"github.com/contend-lab/contend/remote/zklab"
)

// session is the session timeout of the contract tests: long enough that no
// session expires unless a test makes it.
const session = 5 * time.Second

func newLock(t *testing.T, c *zklab.Client) *zklab.Lock {
	t.Helper()
	l, err := zklab.NewLock(c, newPath(t))
	require.NoError(t, err)
	return l
}

func TestLockContract(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it

	t.Run("acquire, release, release again", func(t *testing.T) {
		l := newLock(t, c)
		lease, err := l.Acquire(ctx)
		require.NoError(t, err)
		assert.Positive(t, lease.Token())
		assert.Len(t, children(t, c, l.Path()), 1)
		require.NoError(t, lease.Release(ctx))
		assert.Empty(t, children(t, c, l.Path()))
		assert.ErrorIs(t, lease.Release(ctx), contend.ErrNotHeld)
		assert.ErrorIs(t, lease.Extend(ctx, time.Second), contend.ErrNotHeld)
		ttl, expires := lease.TTL()
		assert.True(t, expires)
		assert.Zero(t, ttl)
	})

	t.Run("TryAcquire while held is ErrHeld, then works", func(t *testing.T) {
		l := newLock(t, c)
		other := newLockOn(t, eps, l.Path())
		lease, err := l.TryAcquire(ctx)
		require.NoError(t, err)
		for _, lk := range []*zklab.Lock{l, other} { // same session, and another
			_, err = lk.TryAcquire(ctx)
			assert.ErrorIs(t, err, contend.ErrHeld)
		}
		assert.Len(t, children(t, c, l.Path()), 1, "a failed TryAcquire left its node")
		require.NoError(t, lease.Release(ctx))
		lease, err = other.TryAcquire(ctx)
		require.NoError(t, err)
		require.NoError(t, lease.Release(ctx))
	})

	t.Run("a ctx done at the call fails even on a free lock", func(t *testing.T) {
		l := newLock(t, c)
		_, err := l.Acquire(done())
		assert.ErrorIs(t, err, context.Canceled)
		_, err = l.TryAcquire(done())
		assert.ErrorIs(t, err, context.Canceled)
		require.NoError(t, c.Settle(within(t, 5*time.Second)))
		assert.Empty(t, children(t, c, l.Path()))
	})

	t.Run("Acquire waits for the holder, FIFO, tokens grow", func(t *testing.T) {
		l := newLock(t, c)
		first, err := l.Acquire(ctx)
		require.NoError(t, err)
		got := make(chan contend.Lease, 2)
		// Two waiters on other sessions, the second queued after the first.
		for i := range 2 {
			w := newLockOn(t, eps, l.Path())
			go func() {
				lease, err := w.Acquire(within(t, 10*time.Second))
				assert.NoError(t, err)
				got <- lease
			}()
			require.True(t, eventually(5*time.Second, func() bool { return len(children(t, c, l.Path())) == 2+i }))
		}
		select {
		case <-got:
			t.Fatal("a waiter acquired while the lock was held")
		case <-time.After(50 * time.Millisecond):
		}
		require.NoError(t, first.Release(ctx))
		second := <-got
		require.NotNil(t, second)
		assert.Greater(t, second.Token(), first.Token())
		require.NoError(t, second.Release(ctx))
		third := <-got
		require.NotNil(t, third)
		assert.Greater(t, third.Token(), second.Token())
		require.NoError(t, third.Release(ctx))
	})

	t.Run("Extend and TTL follow the session", func(t *testing.T) {
		l := newLock(t, c)
		lease, err := l.Acquire(ctx)
		require.NoError(t, err)
		timeout := c.SessionTimeout()
		require.Equal(t, session, timeout)
		ttl, expires := lease.TTL()
		assert.True(t, expires)
		assert.Greater(t, ttl, timeout/2)
		assert.LessOrEqual(t, ttl, timeout*9/10)
		assert.NoError(t, lease.Extend(ctx, timeout))
		assert.ErrorIs(t, lease.Extend(ctx, timeout+time.Millisecond), zklab.ErrBadTTL)
		assert.ErrorIs(t, lease.Extend(ctx, 0), zklab.ErrBadTTL)
		require.NoError(t, lease.Release(ctx))
	})
}

// newLockOn returns a lock on path on a client of its own.
func newLockOn(t *testing.T, eps []string, path string) *zklab.Lock {
	t.Helper()
	l, err := zklab.NewLock(dial(t, eps, session), path)
	require.NoError(t, err)
	return l
}

// TestLockStress runs the harness's exclusion checker with 10 and 100
// goroutines on one session, and checks that the waiters cancelled at the
// end of the run leave no node behind.
func TestLockStress(t *testing.T) {
	eps := standalone(t)
	// One session serves every goroutine, and ZooKeeper answers a
	// session's requests in order: 100 contenders' first creates and
	// listings take a while before the first grant, under -race on a busy
	// machine.
	for _, run := range []struct {
		goroutines int
		d          time.Duration
	}{{10, 500 * time.Millisecond}, {100, 2 * time.Second}} {
		g := run.goroutines
		c := dial(t, eps, session)
		l := newLock(t, c)
		run, err := contendtest.RunLock(l, g, run.d, contendtest.WorkRounds)
		require.NoError(t, err)
		t.Logf("%d goroutines: %d acquisitions, %d round trips, p99 %v", g, run.Acquisitions, l.RoundTrips(), run.P(0.99))
		assert.Positive(t, run.Acquisitions)
		assert.Zero(t, run.Overlaps, "two holders at once")
		assert.Zero(t, run.TokenRegressions, "a token did not grow")
		require.NoError(t, l.Settle(within(t, 10*time.Second)))
		assert.Empty(t, children(t, c, l.Path()), "cancelled waiters left their nodes")
	}
}

// TestLockLinearizable checks histories of Acquire, TryAcquire and Release
// by 4 clients (one session each) with package linearize's lock model.
func TestLockLinearizable(t *testing.T) {
	eps := standalone(t)
	path := newPath(t)
	locks := make([]contend.Lock, 4)
	for i := range locks {
		locks[i] = newLockOn(t, eps, path)
	}
	for range 3 {
		h, err := contendtest.RecordLock(roundRobin(locks), len(locks), 15)
		require.NoError(t, err)
		v, err := linearize.Check(linearize.Lock, h, 30*time.Second, t.TempDir(), "zklab-lock")
		require.NoError(t, err)
		assert.Equal(t, porcupine.Ok, v.Result, "history of %d operations; drawn in %s", v.Ops, v.Visualization)
	}
}

// roundRobin is a contend.Lock that sends the i-th call to locks[i %
// len(locks)], so that RecordLock's clients use several sessions.
func roundRobin(locks []contend.Lock) contend.Lock { return &rr{locks: locks} }

type rr struct {
	locks []contend.Lock
	mu    sync.Mutex
	next  int
}

func (r *rr) pick() contend.Lock {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	return r.locks[r.next%len(r.locks)]
}

func (r *rr) Acquire(ctx context.Context) (contend.Lease, error)    { return r.pick().Acquire(ctx) }
func (r *rr) TryAcquire(ctx context.Context) (contend.Lease, error) { return r.pick().TryAcquire(ctx) }

// TestLockCancelledWaiters: waiters whose ctx ends leave the queue (their
// nodes are deleted), and the holder keeps the lock.
func TestLockCancelledWaiters(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	l := newLock(t, c)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	holder, err := l.Acquire(ctx)
	require.NoError(t, err)
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := l.Acquire(within(t, 300*time.Millisecond))
			errs <- err
		}()
	}
	for range 5 {
		assert.ErrorIs(t, <-errs, context.DeadlineExceeded)
	}
	require.NoError(t, c.Settle(within(t, 5*time.Second)))
	assert.Len(t, children(t, c, l.Path()), 1, "only the holder's node should be left")
	_, err = l.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrHeld)
	require.NoError(t, holder.Release(ctx))
	assert.Empty(t, children(t, c, l.Path()))
}

// TestLockTryAcquireLeavesWithoutPhantom: a TryAcquire that saw the
// holder, and is slow to leave while the holder releases, must take the
// lock rather than leave it to nobody: its node became the lowest, and a
// TryAcquire that found that node reported ErrHeld.
func TestLockTryAcquireLeavesWithoutPhantom(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	l := newLock(t, c)
	other := newLockOn(t, eps, l.Path())
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	holder, err := l.Acquire(ctx)
	require.NoError(t, err)

	stalled, resume := make(chan struct{}), make(chan struct{})
	zklab.SetBeforeLeave(func() {
		zklab.SetBeforeLeave(nil)
		close(stalled)
		<-resume
	})
	t.Cleanup(func() { zklab.SetBeforeLeave(nil) })
	type result struct {
		lease contend.Lease
		err   error
	}
	slow := make(chan result, 1)
	go func() {
		lease, err := l.TryAcquire(ctx)
		slow <- result{lease, err}
	}()
	select {
	case <-stalled: // it saw the holder and is about to leave
	case r := <-slow:
		t.Fatalf("the TryAcquire returned (%v, %v) without trying to leave", r.lease, r.err)
	}
	require.NoError(t, holder.Release(ctx))
	_, err = other.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrHeld, "the slow TryAcquire's node is the lowest: it is about to hold")
	close(resume)
	r := <-slow
	require.NoError(t, r.err, "the slow TryAcquire left the lock to nobody")
	assert.Greater(t, r.lease.Token(), holder.Token())
	require.NoError(t, r.lease.Release(ctx))
}

// TestLockSessionExpiry: when the holder's session expires the lock passes
// to the next waiter, and the old lease says it is over.
func TestLockSessionExpiry(t *testing.T) {
	eps := standalone(t)
	a := dial(t, eps, session)
	la := newLock(t, a)
	lb := newLockOn(t, eps, la.Path())
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	lease, err := la.Acquire(ctx)
	require.NoError(t, err)
	got := make(chan contend.Lease, 1)
	go func() {
		next, err := lb.Acquire(within(t, 10*time.Second))
		assert.NoError(t, err)
		got <- next
	}()
	require.True(t, eventually(5*time.Second, func() bool { return len(children(t, a, la.Path())) == 2 }))

	require.NoError(t, a.ExpireSession(within(t, 10*time.Second)))
	next := <-got
	require.NotNil(t, next)
	assert.Greater(t, next.Token(), lease.Token())
	ttl, _ := lease.TTL()
	assert.Zero(t, ttl, "an expired lease reports time left")
	assert.ErrorIs(t, lease.Extend(ctx, time.Second), contend.ErrNotHeld)
	assert.ErrorIs(t, lease.Release(ctx), contend.ErrNotHeld)

	// The client goes on with a new session.
	_, err = la.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrHeld)
	require.NoError(t, next.Release(ctx))
	again, err := la.Acquire(ctx)
	require.NoError(t, err)
	assert.Greater(t, again.Token(), next.Token())
	require.NoError(t, again.Release(ctx))
}

// TestLockWaiterSessionExpiry: a waiter whose session expires loses its
// place, joins the queue again with the new session, and still acquires.
func TestLockWaiterSessionExpiry(t *testing.T) {
	eps := standalone(t)
	a := dial(t, eps, session)
	b := dial(t, eps, session)
	la := newLock(t, a)
	lb, err := zklab.NewLock(b, la.Path())
	require.NoError(t, err)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	holder, err := la.Acquire(ctx)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		lease, err := lb.Acquire(within(t, 10*time.Second))
		if err == nil {
			err = lease.Release(ctx)
		}
		got <- err
	}()
	require.True(t, eventually(5*time.Second, func() bool { return len(children(t, a, la.Path())) == 2 }))
	before := children(t, a, la.Path())
	require.NoError(t, b.ExpireSession(within(t, 10*time.Second)))
	require.True(t, eventually(5*time.Second, func() bool {
		now := children(t, a, la.Path())
		return len(now) == 2 && !equalSets(now, before)
	}), "the waiter did not queue again")
	require.NoError(t, holder.Release(ctx))
	assert.NoError(t, <-got)
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// TestLockLostCreateReply: the connection drops after a create reaches the
// server; Acquire finds its node by its guid instead of making another.
func TestLockLostCreateReply(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	l := newLock(t, c)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	for _, try := range []bool{false, true} {
		zklab.CutAfter(c, zklab.OpCreate, 1)
		var lease contend.Lease
		var err error
		if try {
			lease, err = l.TryAcquire(ctx)
		} else {
			lease, err = l.Acquire(ctx)
		}
		require.NoError(t, err)
		assert.Len(t, children(t, c, l.Path()), 1, "a lost reply made a second node")
		require.NoError(t, lease.Release(ctx))
		assert.Empty(t, children(t, c, l.Path()))
	}
}

func TestLockBadInput(t *testing.T) {
	eps := standalone(t)
	c := dial(t, eps, session)
	for _, p := range []string{"", "x", "/", "/a/", "/a//b", "/a/./b", "/a/../b", "/zookeeper/x", "/a\x00b", "/a\x01b"} {
		_, err := zklab.NewLock(c, p)
		assert.ErrorIs(t, err, zklab.ErrBadPath, "path %q", p)
	}
	for _, k := range []string{"", "a/b", ".", "..", "a\x00"} {
		_, err := zklab.PathFor(k)
		assert.ErrorIs(t, err, zklab.ErrBadPath, "key %q", k)
		_, err = zklab.NewLockAt(eps, k, session)
		assert.ErrorIs(t, err, zklab.ErrBadPath, "key %q", k)
	}
	p, err := zklab.PathFor("harness:lock:zookeeper")
	require.NoError(t, err)
	assert.Equal(t, "/contend/harness:lock:zookeeper", p)

	_, err = zklab.NewLock(nil, "/a")
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zklab.NewLock(&zklab.Client{}, "/a")
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zklab.Dial(nil, session)
	assert.Error(t, err)
	_, err = zklab.Dial(eps, 0)
	assert.ErrorIs(t, err, zklab.ErrBadTTL)
	_, err = zklab.NewLockAt(eps, "k", -time.Second)
	assert.ErrorIs(t, err, zklab.ErrBadTTL)

	// A path that a semaphore uses.
	sem, err := zklab.NewSemaphore(c, newPath(t), 2)
	require.NoError(t, err)
	_, err = zklab.NewLock(c, sem.Path())
	assert.ErrorIs(t, err, zklab.ErrPathInUse)

	// Zero values refuse.
	var zero zklab.Lock
	_, err = zero.Acquire(context.Background())
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zero.TryAcquire(context.Background())
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	assert.ErrorIs(t, zero.Close(), contend.ErrNotConstructed)
	assert.Zero(t, zero.RoundTrips())
	var zc zklab.Client
	assert.ErrorIs(t, zc.Close(), contend.ErrNotConstructed)
	assert.ErrorIs(t, zc.ExpireSession(context.Background()), contend.ErrNotConstructed)
	assert.False(t, zc.Session().Alive())
	assert.Zero(t, zc.Session().Left())
	assert.False(t, zklab.Session{}.Alive())

	// A closed client refuses, and its leases are over.
	closing := dial(t, eps, session)
	l, err := zklab.NewLock(closing, newPath(t))
	require.NoError(t, err)
	lease, err := l.Acquire(within(t, time.Minute))
	require.NoError(t, err)
	require.NoError(t, closing.Close())
	require.NoError(t, closing.Close(), "Close is idempotent")
	_, err = l.Acquire(within(t, time.Minute))
	assert.ErrorIs(t, err, zklab.ErrClosed)
	_, err = l.TryAcquire(context.Background())
	assert.ErrorIs(t, err, zklab.ErrClosed)
	assert.ErrorIs(t, lease.Release(context.Background()), contend.ErrNotHeld)
	_, err = zklab.NewLock(closing, newPath(t))
	assert.ErrorIs(t, err, zklab.ErrClosed)
	assert.ErrorIs(t, closing.ExpireSession(context.Background()), zklab.ErrClosed)
	assert.Empty(t, children(t, c, l.Path()), "closing the session left the holder's node")
}

// TestNewLockAtOwnsItsClient: the registry's constructor dials a client
// that Close closes.
func TestNewLockAtOwnsItsClient(t *testing.T) {
	eps := standalone(t)
	l, err := zklab.NewLockAt(eps, "owned", session)
	require.NoError(t, err)
	lease, err := l.Acquire(within(t, time.Minute))
	require.NoError(t, err)
	assert.Positive(t, l.RoundTrips())
	require.NoError(t, l.Close())
	assert.False(t, l.Client().Session().Alive())
	err = lease.Release(context.Background())
	assert.True(t, errors.Is(err, contend.ErrNotHeld), "a lease of a closed client: %v", err)
}

// TestShortSessions: the lab's servers grant the short sessions that fault
// scenarios ask for and clamp one below their floor; a lease's TTL follows
// the session's timeout.
func TestShortSessions(t *testing.T) {
	eps := standalone(t)
	for _, tc := range []struct{ ask, got time.Duration }{
		{300 * time.Millisecond, 300 * time.Millisecond},
		{time.Second, time.Second},
		{50 * time.Millisecond, zkserver.MinSessionTimeout},
	} {
		c := dial(t, eps, tc.ask)
		assert.Equal(t, tc.got, c.SessionTimeout(), "asked for %v", tc.ask)
		if tc.got < time.Second {
			continue // too short to hold on a busy machine under -race
		}
		l := newLock(t, c)
		lease, err := l.Acquire(within(t, 10*time.Second))
		require.NoError(t, err)
		ttl, _ := lease.TTL()
		assert.LessOrEqual(t, ttl, tc.got*9/10)
		assert.Positive(t, ttl)
		require.NoError(t, lease.Release(within(t, 10*time.Second)))
	}
}
