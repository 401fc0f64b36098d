package zklab_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/internal/zkserver"
	"github.com/contend-lab/contend/remote/zklab"
)

// refusesWithin checks that acquiring l with a ctx of patience fails with
// the ctx's error, and returns within patience plus slack.
func refusesWithin(t *testing.T, l *zklab.Lock, patience time.Duration) {
	t.Helper()
	for _, try := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		start := time.Now()
		var err error
		if try {
			_, err = l.TryAcquire(ctx)
		} else {
			_, err = l.Acquire(ctx)
		}
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded, "try=%v", try)
		assert.Less(t, time.Since(start), patience+time.Second, "try=%v: the refusal was late", try)
	}
}

// TestStandaloneServerFaults pauses, kills and restarts a server of its
// own under a lock.
func TestStandaloneServerFaults(t *testing.T) {
	cl := servertest.Start(t, zkserver.Backend, zkserver.Standalone)
	srv := cl.Nodes()[0]
	c := dial(t, cl.Endpoints(), session)
	l, err := zklab.NewLock(c, newPath(t))
	require.NoError(t, err)
	other, err := zklab.NewLock(dial(t, cl.Endpoints(), session), l.Path())
	require.NoError(t, err)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	first, err := l.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, first.Release(ctx))

	t.Run("paused: refused within the ctx, nothing left after", func(t *testing.T) {
		require.NoError(t, srv.Pause())
		refusesWithin(t, l, 300*time.Millisecond)
		require.NoError(t, srv.Resume())
		require.NoError(t, c.Settle(within(t, 10*time.Second)))
		assert.Empty(t, children(t, c, l.Path()), "an abandoned create left its node")
		lease, err := l.Acquire(within(t, 10*time.Second))
		require.NoError(t, err)
		assert.Greater(t, lease.Token(), first.Token())
		require.NoError(t, lease.Release(ctx))
	})

	t.Run("a lease survives a restart shorter than its session", func(t *testing.T) {
		// A long session, so that the JVM's restart fits in it even on a
		// busy machine.
		const long = 30 * time.Second
		holder, err := zklab.NewLock(dial(t, cl.Endpoints(), long), l.Path())
		require.NoError(t, err)
		lease, err := holder.Acquire(ctx)
		require.NoError(t, err)
		require.NoError(t, srv.Kill())
		refusesWithin(t, other, 300*time.Millisecond)
		start := time.Now()
		require.NoError(t, srv.Restart(within(t, 30*time.Second)))
		if took := time.Since(start); took > long/2 {
			t.Skipf("the restart took %v: not shorter than the session by a safe margin", took)
		}
		_, err = other.TryAcquire(within(t, 10*time.Second))
		assert.ErrorIs(t, err, contend.ErrHeld, "the holder's node did not survive the restart")
		assert.NoError(t, lease.Extend(within(t, 10*time.Second), time.Second))
		require.NoError(t, lease.Release(within(t, 10*time.Second)))
		next, err := other.Acquire(within(t, 10*time.Second))
		require.NoError(t, err)
		assert.Greater(t, next.Token(), lease.Token(), "tokens went back across a restart")
		require.NoError(t, next.Release(ctx))
	})
}

// TestEnsembleQuorum: a lock on a 3-member ensemble works with one member
// down, whichever it is, and refuses within the ctx with two down.
func TestEnsembleQuorum(t *testing.T) {
	cl := servertest.Start(t, zkserver.Backend, zkserver.Ensemble3)
	c := dial(t, cl.Endpoints(), session)
	l, err := zklab.NewLock(c, newPath(t))
	require.NoError(t, err)
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	first, err := l.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, first.Release(ctx))

	leader, err := cl.Leader(within(t, 5*time.Second))
	require.NoError(t, err)
	require.NoError(t, cl.Nodes()[leader].Kill())
	start := time.Now()
	second, err := l.Acquire(within(t, 20*time.Second))
	require.NoError(t, err, "no lock with one member of three down")
	t.Logf("acquired %v after the leader was killed", time.Since(start))
	assert.Greater(t, second.Token(), first.Token())
	require.NoError(t, second.Release(ctx))

	follower := (leader + 1) % 3
	require.NoError(t, cl.Nodes()[follower].Kill())
	refusesWithin(t, l, time.Second)

	require.NoError(t, cl.Nodes()[leader].Restart(within(t, 30*time.Second)))
	third, err := l.Acquire(within(t, 20*time.Second))
	require.NoError(t, err, "no lock once a quorum was back")
	assert.Greater(t, third.Token(), second.Token())
	require.NoError(t, third.Release(ctx))
}
