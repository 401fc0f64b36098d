package etcdlab_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/harness"
	"github.com/contend-lab/contend/internal/etcdclient"
	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
	"github.com/contend-lab/contend/remote/etcdlab"
)

// The uniform constructors the registry calls, and what their values are.
var (
	_ func([]string, string, time.Duration) (*etcdlab.Lock, error)             = etcdlab.NewLockAt
	_ func([]string, string, int64, time.Duration) (*etcdlab.Semaphore, error) = etcdlab.NewSemaphoreAt
	_ interface {
		contend.Lock
		remote.RoundTripCounter
		Close() error
	} = (*etcdlab.Lock)(nil)
	_ interface {
		contend.Semaphore
		remote.RoundTripCounter
		Close() error
	} = (*etcdlab.Semaphore)(nil)
)

// spread is one Lock made of several, one per client, that hands each
// Acquire to the next: contenders in several processes, as etcd sees them.
type spread struct {
	locks []*etcdlab.Lock
	next  atomic.Int64
}

func (s *spread) pick() *etcdlab.Lock { return s.locks[s.next.Add(1)%int64(len(s.locks))] }
func (s *spread) Acquire(ctx context.Context) (contend.Lease, error) {
	return s.pick().Acquire(ctx)
}
func (s *spread) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return s.pick().TryAcquire(ctx)
}

// spreadSem is spread for semaphores.
type spreadSem struct {
	sems []*etcdlab.Semaphore
	next atomic.Int64
}

func (s *spreadSem) pick() *etcdlab.Semaphore { return s.sems[s.next.Add(1)%int64(len(s.sems))] }
func (s *spreadSem) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	return s.pick().Acquire(ctx, n)
}
func (s *spreadSem) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	return s.pick().TryAcquire(ctx, n)
}
func (s *spreadSem) Capacity() int64 { return s.sems[0].Capacity() }

// afterRun checks what a run leaves: every clean-up done, no key queued on
// key, and, for a lock, the lock free.
func afterRun(t *testing.T, raw *clientv3.Client, key string, clients []*etcdlab.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range clients {
		require.NoError(t, c.Settle(ctx))
	}
	resp, err := raw.Get(ctx, key+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, resp.Count, "keys left queued on %s after the run", key)
}

// TestStress runs the harness's stress checks (no two holders, tokens only
// grow; never more than Capacity permits) on one etcd member, with the
// contenders on one client and spread over four.
func TestStress(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	raw, _, err := etcdclient.New(cl.Endpoints())
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	const d = 1500 * time.Millisecond

	lockAt := func(t *testing.T, key string) *etcdlab.Lock {
		l, err := etcdlab.NewLockAt(cl.Endpoints(), key, harness.RemoteLease)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, l.Close()) })
		return l
	}
	checkLock := func(t *testing.T, run contendtest.LockRun, err error) {
		require.NoError(t, err)
		t.Logf("%d goroutines: %d acquisitions in %v, p50 %v p99 %v, fairness %.2f",
			run.Goroutines, run.Acquisitions, run.Elapsed.Round(time.Millisecond), run.P(0.5), run.P(0.99), run.JainFairness())
		assert.Positive(t, run.Acquisitions)
		assert.Zero(t, run.Overlaps, "two holders at once")
		assert.Zero(t, run.TokenRegressions, "a token did not grow")
	}

	t.Run("lock/clients=1/goroutines=100", func(t *testing.T) {
		l := lockAt(t, t.Name())
		run, err := contendtest.RunLock(l, 100, d, contendtest.WorkRounds)
		checkLock(t, run, err)
		afterRun(t, raw, t.Name(), []*etcdlab.Client{l.Client()})
		t.Logf("%.1f requests per acquisition", float64(l.RoundTrips())/float64(run.Acquisitions))
	})

	t.Run("lock/clients=4/goroutines=20", func(t *testing.T) {
		s := &spread{}
		var clients []*etcdlab.Client
		for range 4 {
			l := lockAt(t, t.Name())
			s.locks = append(s.locks, l)
			clients = append(clients, l.Client())
		}
		run, err := contendtest.RunLock(s, 20, d, contendtest.WorkRounds)
		checkLock(t, run, err)
		afterRun(t, raw, t.Name(), clients)
	})

	t.Run("semaphore/clients=3/goroutines=30", func(t *testing.T) {
		s := &spreadSem{}
		var clients []*etcdlab.Client
		for range 3 {
			sem, err := etcdlab.NewSemaphoreAt(cl.Endpoints(), t.Name(), 3, harness.RemoteLease)
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, sem.Close()) })
			s.sems = append(s.sems, sem)
			clients = append(clients, sem.Client())
		}
		run, err := contendtest.RunSemaphore(s, 30, d, func(g int) int64 { return int64(1 + g%3) })
		require.NoError(t, err)
		t.Logf("%d acquisitions, most permits held at once %d of %d, p99 %v", run.Acquisitions, run.MaxHeld, run.Capacity, run.P(0.99))
		assert.Positive(t, run.Acquisitions)
		assert.Zero(t, run.Overflows, "more than Capacity permits held")
		assert.LessOrEqual(t, run.MaxHeld, run.Capacity)
		assert.Greater(t, run.MaxHeld, int64(1), "never more than one permit held: the semaphore serialises")
		afterRun(t, raw, t.Name(), clients)
	})
}
