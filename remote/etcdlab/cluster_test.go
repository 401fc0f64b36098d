package etcdlab

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

// TestCluster3 fails members of a 3-member cluster under a lock in use, in
// sequence on one cluster: the leader killed and paused (the lock carries
// on after an election; the gap is logged), one member down (still
// grants), two down (refuses within the caller's deadline), and back.
func TestCluster3(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Cluster3).(*etcdserver.Cluster)
	eps := cl.Endpoints()
	raw := rawClient(t, eps)
	// The harness's lease for remote stress runs: a paused leader can keep
	// refreshes from getting through for a second or two, which a shorter
	// lease would not survive (its holder would give it up, correctly).
	c := newTestClient(t, eps, 5*time.Second)
	other := newTestClient(t, eps, 5*time.Second)
	l := NewLockOrFail(t, c, "cluster")
	lw := NewLockOrFail(t, other, "cluster")
	var last uint64
	grant := func(t *testing.T, ctx context.Context, l *Lock) {
		t.Helper()
		lease, err := l.Acquire(ctx)
		require.NoError(t, err)
		assert.Greater(t, lease.Token(), last, "tokens went back")
		last = lease.Token()
		require.NoError(t, lease.Release(ctx))
	}
	leader := func(t *testing.T) int {
		t.Helper()
		var i int
		var err error
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(bg, 500*time.Millisecond)
			defer cancel()
			i, err = cl.Leader(ctx)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond, "no leader: %v", err)
		return i
	}

	// handover holds the lock, queues a waiter on another client, fails the
	// leader with fail, and measures how long the holder's Release and the
	// waiter's grant take.
	handover := func(t *testing.T, fail func(m *etcdserver.Member) error) {
		held, err := l.Acquire(ctxFor(t, 10*time.Second))
		require.NoError(t, err)
		w := lockAsync(ctxFor(t, 20*time.Second), lw)
		waitQueued(t, raw, "cluster", 2)
		m := cl.Members()[leader(t)]
		require.NoError(t, fail(m))
		start := time.Now()
		require.NoError(t, held.Release(ctxFor(t, 10*time.Second)), "Release across the failover")
		released := time.Since(start)
		r := within(t, w, 15*time.Second, "the waiter across the failover")
		require.NoError(t, r.err)
		assert.Greater(t, r.lease.Token(), held.Token())
		last = r.lease.Token()
		t.Logf("leader %s failed: holder's Release after %v, waiter granted after %v",
			m.Name(), released.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		require.NoError(t, r.lease.Release(ctxFor(t, 10*time.Second)))
	}

	t.Run("leader-killed", func(t *testing.T) {
		grant(t, bg, l)
		var killed *etcdserver.Member
		handover(t, func(m *etcdserver.Member) error { killed = m; return m.Kill() })
		grant(t, ctxFor(t, 5*time.Second), l)
		require.NoError(t, killed.Restart(ctxFor(t, 30*time.Second)))
	})

	t.Run("leader-paused", func(t *testing.T) {
		var paused *etcdserver.Member
		handover(t, func(m *etcdserver.Member) error {
			paused = m
			t.Cleanup(func() { _ = m.Resume() }) // also after a failure: later subtests need it
			return m.Pause()
		})
		grant(t, ctxFor(t, 10*time.Second), l)
		require.NoError(t, paused.Resume())
		_, err := remote.WaitServing(ctxFor(t, 10*time.Second), cl)
		require.NoError(t, err)
	})

	var down []*etcdserver.Member
	t.Run("one-down", func(t *testing.T) {
		m := cl.Members()[leader(t)]
		require.NoError(t, m.Kill())
		down = append(down, m)
		for range 3 {
			grant(t, ctxFor(t, 10*time.Second), l)
		}
		lease, err := lw.TryAcquire(ctxFor(t, 5*time.Second))
		require.NoError(t, err, "TryAcquire with one member down")
		require.NoError(t, lease.Release(bg))
	})

	t.Run("two-down", func(t *testing.T) {
		require.Len(t, down, 1)
		for _, m := range cl.Members() {
			if m != down[0] {
				require.NoError(t, m.Kill())
				down = append(down, m)
				break
			}
		}
		const deadline = 2 * time.Second
		start := time.Now()
		_, err := l.Acquire(ctxFor(t, deadline))
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire without a quorum")
		assert.Less(t, time.Since(start), deadline+time.Second, "Acquire overran its deadline")
		start = time.Now()
		_, err = l.TryAcquire(ctxFor(t, deadline))
		assert.Error(t, err, "TryAcquire without a quorum")
		assert.NotErrorIs(t, err, contend.ErrHeld, "no quorum is not a held lock")
		assert.Less(t, time.Since(start), deadline+time.Second, "TryAcquire overran its deadline")
		t.Logf("without a quorum: TryAcquire failed with %v", err)

		for _, m := range down {
			require.NoError(t, m.Restart(ctxFor(t, 30*time.Second)))
		}
		start = time.Now()
		grant(t, ctxFor(t, 15*time.Second), l)
		t.Logf("quorum back: granted after %v", time.Since(start).Round(time.Millisecond))
	})
}
