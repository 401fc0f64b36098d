package etcdref

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/etcdclient"
	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/internal/hangreport"
	"github.com/contend-lab/contend/internal/servertest"
)

var bg = context.Background()

// waitLimit bounds the tests' Acquires, so that a broken lock fails the test
// instead of hanging it.
const waitLimit = 10 * time.Second

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, d)
	t.Cleanup(cancel)
	return ctx
}

func newTestLock(t *testing.T, eps []string, key string, ttl time.Duration, extra ...grpc.DialOption) *Lock {
	t.Helper()
	l, err := newLockAt(eps, key, ttl, extra...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

func rawClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, _, err := etcdclient.New(eps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// queued returns the keys queued on the mutex prefix, oldest first.
func queued(t *testing.T, cli *clientv3.Client, prefix string) []*struct {
	Key string
	Rev int64
} {
	t.Helper()
	resp, err := cli.Get(ctxFor(t, 5*time.Second), prefix+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	require.NoError(t, err)
	var out []*struct {
		Key string
		Rev int64
	}
	for _, kv := range resp.Kvs {
		out = append(out, &struct {
			Key string
			Rev int64
		}{string(kv.Key), kv.CreateRevision})
	}
	return out
}

func waitQueued(t *testing.T, cli *clientv3.Client, prefix string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(queued(t, cli, prefix)) == n }, 5*time.Second, 5*time.Millisecond,
		"the queue on %s never had %d keys", prefix, n)
}

type result struct {
	lease contend.Lease
	err   error
}

func async(f func() (contend.Lease, error)) <-chan result {
	ch := make(chan result, 1)
	go func() { l, err := f(); ch <- result{l, err} }()
	return ch
}

func TestLock(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	eps := cl.Endpoints()
	raw := rawClient(t, eps)

	t.Run("basics", func(t *testing.T) {
		l := newTestLock(t, eps, t.Name(), 2*time.Second)
		other := newTestLock(t, eps, t.Name(), 2*time.Second)
		var last uint64
		for range 3 {
			lease, err := l.Acquire(ctxFor(t, waitLimit))
			require.NoError(t, err)
			assert.Greater(t, lease.Token(), last)
			last = lease.Token()
			_, err = other.TryAcquire(bg)
			assert.ErrorIs(t, err, contend.ErrHeld)
			_, err = l.TryAcquire(bg)
			assert.ErrorIs(t, err, contend.ErrHeld, "a second Acquire on the same Lock gets a session of its own")
			assert.NoError(t, lease.Extend(bg, time.Second))
			assert.ErrorIs(t, lease.Extend(bg, 0), ErrBadTTL)
			assert.ErrorIs(t, lease.Extend(bg, 3*time.Second), ErrBadTTL)
			require.NoError(t, lease.Release(bg))
			assert.ErrorIs(t, lease.Release(bg), contend.ErrNotHeld)
			assert.ErrorIs(t, lease.Extend(bg, time.Second), contend.ErrNotHeld)
			ttl, _ := lease.TTL()
			assert.Zero(t, ttl)
			lease, err = other.TryAcquire(bg)
			require.NoError(t, err)
			assert.Greater(t, lease.Token(), last)
			last = lease.Token()
			require.NoError(t, lease.Release(bg))
		}
		assert.Empty(t, queued(t, raw, t.Name()))
	})

	t.Run("ctx-done-before", func(t *testing.T) {
		l := newTestLock(t, eps, t.Name(), 2*time.Second)
		done, cancel := context.WithCancel(bg)
		cancel()
		_, err := l.Acquire(done)
		assert.ErrorIs(t, err, context.Canceled)
		_, err = l.TryAcquire(done)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, queued(t, raw, t.Name()))
	})

	t.Run("cancelled-waiter-cleaned-up", func(t *testing.T) {
		l := newTestLock(t, eps, t.Name(), 2*time.Second)
		held, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		start := time.Now()
		_, err = l.Acquire(ctxFor(t, 300*time.Millisecond))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second)
		waitQueued(t, raw, t.Name(), 1) // the waiter's session is revoked in the background
		require.NoError(t, held.Release(bg))
		assert.Empty(t, queued(t, raw, t.Name()))
	})

	t.Run("token-after-waiting", func(t *testing.T) {
		// The token of a holder that waited is the revision of the read
		// after its wait, not its key's create revision; it still exceeds
		// the previous holder's.
		l := newTestLock(t, eps, t.Name(), 2*time.Second)
		a, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		q := queued(t, raw, t.Name())
		require.Len(t, q, 1)
		assert.Equal(t, uint64(q[0].Rev), a.Token(), "uncontended: the token is the key's create revision")
		b := async(func() (contend.Lease, error) { return l.Acquire(ctxFor(t, waitLimit)) })
		waitQueued(t, raw, t.Name(), 2)
		bRev := queued(t, raw, t.Name())[1].Rev
		require.NoError(t, a.Release(bg))
		r := <-b
		require.NoError(t, r.err)
		assert.Greater(t, r.lease.Token(), a.Token())
		assert.Greater(t, r.lease.Token(), uint64(bRev), "after waiting: the token is a later revision than the key's")
		require.NoError(t, r.lease.Release(bg))
	})

	t.Run("expired-session", func(t *testing.T) {
		l := newTestLock(t, eps, t.Name(), 2*time.Second)
		old, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		_, err = raw.Revoke(bg, old.(*lease).s.Lease())
		require.NoError(t, err)
		next, err := l.TryAcquire(bg)
		require.NoError(t, err, "the lock is free once the holder's lease is revoked")
		assert.Greater(t, next.Token(), old.Token())
		assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld)
		require.NoError(t, next.Release(bg))
	})
}

// failDelete is a unary interceptor that fails the first DeleteRange once
// armed, without sending it.
type failDelete struct{ armed atomic.Bool }

func (f *failDelete) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == "/etcdserverpb.KV/DeleteRange" && f.armed.CompareAndSwap(true, false) {
		return status.Error(codes.Unavailable, "test: delete failed")
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// TestCancelledWaiterFailedCleanup: Mutex.Lock's own clean-up of a waiter
// whose ctx ended fails; the adapter's revoke of its session still takes
// the key out of the queue.
func TestCancelledWaiterFailedCleanup(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	eps := cl.Endpoints()
	raw := rawClient(t, eps)
	f := &failDelete{}
	h := newTestLock(t, eps, "cleanup", 2*time.Second)
	w := newTestLock(t, eps, "cleanup", 2*time.Second, grpc.WithChainUnaryInterceptor(f.intercept))
	held, err := h.Acquire(ctxFor(t, waitLimit))
	require.NoError(t, err)
	f.armed.Store(true)
	_, err = w.Acquire(ctxFor(t, 300*time.Millisecond))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	waitQueued(t, raw, "cleanup", 1)
	assert.False(t, f.armed.Load(), "Mutex.Lock did not try to delete its key")
	require.NoError(t, held.Release(bg))
}

// TestTTLIsTheSessionsTTL pins a deviation: TTL does not count down.
func TestTTLIsTheSessionsTTL(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	l := newTestLock(t, cl.Endpoints(), "ttl", 2*time.Second)
	lease, err := l.Acquire(ctxFor(t, waitLimit))
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond)
	ttl, expires := lease.TTL()
	assert.True(t, expires)
	assert.Equal(t, 2*time.Second, ttl, "TTL counts down: the deviation is gone, update the package doc")
	require.NoError(t, lease.Release(bg))
}

// blockDelete is a unary interceptor that, while armed, holds the first
// DeleteRange until released.
type blockDelete struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (b *blockDelete) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == "/etcdserverpb.KV/DeleteRange" && b.armed.CompareAndSwap(true, false) {
		close(b.reached)
		<-b.release
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// TestTryLockTransientKey pins a deviation: TryLock queues its key before
// it looks, and deletes it after. X's TryLock finds the lock held and is
// about to delete its key; the holder releases; Y's TryLock finds X's key
// first in line and reports the lock held, though no lease is live and
// none is to come (X fails too).
func TestTryLockTransientKey(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	eps := cl.Endpoints()
	raw := rawClient(t, eps)
	h := newTestLock(t, eps, "transient", 2*time.Second)
	b := &blockDelete{reached: make(chan struct{}), release: make(chan struct{})}
	x := newTestLock(t, eps, "transient", 2*time.Second, grpc.WithChainUnaryInterceptor(b.intercept))
	y := newTestLock(t, eps, "transient", 2*time.Second)

	held, err := h.Acquire(ctxFor(t, waitLimit))
	require.NoError(t, err)
	b.armed.Store(true)
	xr := async(func() (contend.Lease, error) { return x.TryAcquire(bg) })
	<-b.reached // X found the lock held and is deleting its key
	require.NoError(t, held.Release(bg))
	require.Len(t, queued(t, raw, "transient"), 1, "only X's key is queued: no lease is live")

	_, err = y.TryAcquire(bg)
	assert.ErrorIs(t, err, contend.ErrHeld, "Y should find X's transient key first in line: the deviation is gone, update the package doc")
	close(b.release)
	assert.ErrorIs(t, (<-xr).err, contend.ErrHeld)
	lease, err := y.TryAcquire(bg)
	require.NoError(t, err, "the lock is free after X's TryLock")
	require.NoError(t, lease.Release(bg))
}

// TestMutexLockOverrunsContext pins why the adapter runs Mutex.Lock in a
// goroutine: a Mutex.Lock whose ctx ends while it waits deletes its key with
// the client's context, so with the member paused it returns only after the
// member resumes; the adapter's Acquire returns at its deadline.
func TestMutexLockOverrunsContext(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	eps := cl.Endpoints()
	member := cl.Nodes()[0]
	raw := rawClient(t, eps)
	holder, err := concurrency.NewSession(raw, concurrency.WithTTL(5))
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Close() })
	require.NoError(t, concurrency.NewMutex(holder, "overrun").Lock(bg))

	waiterSess, err := concurrency.NewSession(raw, concurrency.WithTTL(5))
	require.NoError(t, err)
	t.Cleanup(func() { waiterSess.Orphan() })
	adapter := newTestLock(t, eps, "overrun", 5*time.Second)

	const deadline = 500 * time.Millisecond
	var wg sync.WaitGroup
	var mutexTook, adapterTook time.Duration
	var mutexErr, adapterErr error
	start := time.Now()
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(bg, deadline)
		defer cancel()
		mutexErr = concurrency.NewMutex(waiterSess, "overrun").Lock(ctx)
		mutexTook = time.Since(start)
	})
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(bg, deadline)
		defer cancel()
		_, adapterErr = adapter.Acquire(ctx)
		adapterTook = time.Since(start)
	})
	time.Sleep(deadline / 2) // both wait
	require.NoError(t, member.Pause())
	time.Sleep(2 * time.Second)
	require.NoError(t, member.Resume())
	wg.Wait()
	t.Logf("with the member paused for 2 s: Mutex.Lock returned after %v (%v), the adapter after %v (%v)",
		mutexTook.Round(time.Millisecond), mutexErr, adapterTook.Round(time.Millisecond), adapterErr)
	assert.ErrorIs(t, adapterErr, context.DeadlineExceeded)
	assert.Less(t, adapterTook, deadline+500*time.Millisecond, "the adapter overran its deadline")
	assert.Error(t, mutexErr)
	assert.Greater(t, mutexTook, 2*time.Second, "Mutex.Lock returned in time: the deviation is gone, update the package doc")
}

func TestBadInputAndZeroValue(t *testing.T) {
	eps := []string{"127.0.0.1:1"}
	_, err := NewLockAt(eps, "", time.Second)
	assert.Error(t, err, "empty key")
	_, err = NewLockAt(nil, "k", time.Second)
	assert.Error(t, err, "no endpoints")
	_, err = NewLockAt(eps, "k", 999*time.Millisecond)
	assert.ErrorIs(t, err, ErrBadTTL)

	var z Lock
	_, err = z.Acquire(ctxFor(t, waitLimit))
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = z.TryAcquire(bg)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	assert.ErrorIs(t, z.Close(), contend.ErrNotConstructed)
	assert.Zero(t, z.RoundTrips())

	l, err := NewLockAt(eps, "k", time.Second)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close twice")
	_, err = l.Acquire(ctxFor(t, waitLimit))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = l.TryAcquire(bg)
	assert.ErrorIs(t, err, ErrClosed)
}

// BenchmarkLock is etcdlab's BenchmarkLock for the reference.
func BenchmarkLock(b *testing.B) {
	cl := servertest.Start(b, etcdserver.Backend, etcdserver.Single)
	for _, g := range []int{1, 2, 10} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			l, err := NewLockAt(cl.Endpoints(), b.Name(), 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			// Warm the session pool: one session per goroutine, outside the timing.
			for range g {
				s, err := l.session(bg)
				if err != nil {
					b.Fatal(err)
				}
				l.reuse(s)
			}
			start := l.RoundTrips()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range g {
				n := b.N / g
				if i < b.N%g {
					n++
				}
				wg.Go(func() {
					for range n {
						lease, err := l.Acquire(bg)
						if err != nil {
							b.Error(err)
							return
						}
						if err := lease.Release(bg); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(l.RoundTrips()-start)/float64(b.N), "roundtrips/op")
		})
	}
}

// TestMain reports where a hung test waits before go test's timeout
// would (package hangreport).
func TestMain(m *testing.M) { os.Exit(hangreport.Run(m)) }
