package zkref_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/hangreport"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/internal/zkserver"
	"github.com/contend-lab/contend/linearize"
	"github.com/contend-lab/contend/remote/zklab"
	"github.com/contend-lab/contend/remote/zkref"
)

const session = 5 * time.Second

func TestReference(t *testing.T) {
	cl := servertest.Start(t, zkserver.Backend, zkserver.Standalone)
	eps := cl.Endpoints()
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	newLock := func(t *testing.T, key string) *zkref.Lock {
		l, err := zkref.NewLockAt(eps, key, session)
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	queue := func(t *testing.T, l *zkref.Lock) []string {
		kids, _, err := l.Client().Conn().Children(l.Path())
		require.NoError(t, err)
		return kids
	}

	t.Run("contract basics, no token", func(t *testing.T) {
		l := newLock(t, "basics")
		lease, err := l.Acquire(ctx)
		require.NoError(t, err)
		assert.Zero(t, lease.Token(), "zk.Lock has no fencing token")
		ttl, expires := lease.TTL()
		assert.True(t, expires)
		assert.Greater(t, ttl, session/2)
		assert.NoError(t, lease.Extend(ctx, time.Second))
		_, err = l.TryAcquire(ctx)
		assert.ErrorIs(t, err, contend.ErrHeld)
		require.NoError(t, lease.Release(ctx))
		assert.ErrorIs(t, lease.Release(ctx), contend.ErrNotHeld)
		assert.ErrorIs(t, lease.Extend(ctx, time.Second), contend.ErrNotHeld)
		_, err = l.Acquire(done())
		assert.ErrorIs(t, err, context.Canceled)
		_, err = l.TryAcquire(done())
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, queue(t, l))
		assert.Positive(t, l.RoundTrips())
	})

	t.Run("an abandoned Acquire takes its turn, then lets go", func(t *testing.T) {
		l := newLock(t, "abandoned")
		holder, err := l.Acquire(ctx)
		require.NoError(t, err)
		actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err = l.Acquire(actx)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Len(t, queue(t, l), 2, "zk.Lock cannot be cancelled: its node stays queued")
		require.NoError(t, holder.Release(ctx))
		require.NoError(t, l.Settle(within(t, 10*time.Second)))
		assert.Empty(t, queue(t, l), "the abandoned acquisition did not let go")
		lease, err := l.TryAcquire(ctx)
		require.NoError(t, err)
		require.NoError(t, lease.Release(ctx))
	})

	t.Run("session expiry ends the lease", func(t *testing.T) {
		l := newLock(t, "expiry")
		lease, err := l.Acquire(ctx)
		require.NoError(t, err)
		require.NoError(t, l.Client().ExpireSession(within(t, 10*time.Second)))
		ttl, _ := lease.TTL()
		assert.Zero(t, ttl)
		assert.ErrorIs(t, lease.Extend(ctx, time.Second), contend.ErrNotHeld)
		assert.ErrorIs(t, lease.Release(ctx), contend.ErrNotHeld)
		again, err := l.TryAcquire(ctx)
		require.NoError(t, err, "the expired holder's node is gone")
		require.NoError(t, again.Release(ctx))
	})

	t.Run("excludes under the harness, histories linearizable", func(t *testing.T) {
		l := newLock(t, "stress")
		run, err := contendtest.RunLock(l, 10, 500*time.Millisecond, contendtest.WorkRounds)
		require.NoError(t, err)
		assert.Positive(t, run.Acquisitions)
		assert.Zero(t, run.Overlaps)
		require.NoError(t, l.Settle(within(t, 10*time.Second)))
		assert.Empty(t, queue(t, l))
		// Tokens are all 0, so the model cannot order the grants: give
		// each lease a token from its position in the history instead.
		h, err := contendtest.RecordLock(&counted{l: l}, 4, 10)
		require.NoError(t, err)
		v, err := linearize.Check(linearize.Lock, h, 30*time.Second, t.TempDir(), "zkref")
		require.NoError(t, err)
		assert.Equal(t, porcupine.Ok, v.Result, "drawn in %s", v.Visualization)
	})

	t.Run("bad input", func(t *testing.T) {
		var zero zkref.Lock
		_, err := zero.Acquire(ctx)
		assert.ErrorIs(t, err, contend.ErrNotConstructed)
		_, err = zero.TryAcquire(ctx)
		assert.ErrorIs(t, err, contend.ErrNotConstructed)
		assert.ErrorIs(t, zero.Close(), contend.ErrNotConstructed)
		_, err = zkref.NewLock(nil, "/x")
		assert.ErrorIs(t, err, contend.ErrNotConstructed)
		_, err = zkref.NewLockAt(eps, "", session)
		assert.ErrorIs(t, err, zklab.ErrBadPath)
		l := newLock(t, "closed")
		require.NoError(t, l.Close())
		_, err = l.Acquire(ctx)
		assert.Error(t, err)
		_, err = l.TryAcquire(ctx)
		assert.Error(t, err)
	})
}

// counted gives each lease of l a token that grows with every grant, so
// that linearize's lock model, which wants fencing tokens, can check a
// lock that has none. The counter is read after the grant, so the tokens
// follow the order in which the grants returned: with one holder at a time
// that is the order they were made in.
type counted struct {
	l *zkref.Lock
	n atomicCounter
}

func (c *counted) Acquire(ctx context.Context) (contend.Lease, error) {
	return c.wrap(c.l.Acquire(ctx))
}

func (c *counted) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return c.wrap(c.l.TryAcquire(ctx))
}

func (c *counted) wrap(lease contend.Lease, err error) (contend.Lease, error) {
	if err != nil {
		return nil, err
	}
	return tokened{Lease: lease, token: c.n.next()}, nil
}

type tokened struct {
	contend.Lease
	token uint64
}

func (t tokened) Token() uint64 { return t.token }

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func done() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

type atomicCounter struct{ n atomic.Uint64 }

func (a *atomicCounter) next() uint64 { return a.n.Add(1) }

// TestMain reports where a hung test waits before go test's timeout
// would (package hangreport).
func TestMain(m *testing.M) { os.Exit(hangreport.Run(m)) }
