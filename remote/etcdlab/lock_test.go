package etcdlab

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/contend-lab/contend"
)

// TestLock runs the lock's contract on one etcd member, one subtest per
// rule, each on its own prefix.
func TestLock(t *testing.T) {
	cl := startSingle(t)
	eps := cl.Endpoints()
	raw := rawClient(t, eps)
	c := watchOnly(newTestClient(t, eps, 2*time.Second))
	other := watchOnly(newTestClient(t, eps, 2*time.Second)) // a second process, as etcd sees it

	newLock := func(t *testing.T, c *Client) *Lock {
		l, err := NewLock(c, t.Name())
		require.NoError(t, err)
		return l
	}

	t.Run("basics", func(t *testing.T) {
		l := newLock(t, c)
		var last uint64
		keys := map[string]bool{}
		defer func() {
			// One client taking the lock in turn reuses one key name: etcd
			// keeps deleted keys in its index until compaction, and every
			// read of the queue walks them.
			assert.Len(t, keys, 1, "key names were not reused: %v", keys)
		}()
		for i := range 3 {
			lease, err := l.Acquire(ctxFor(t, waitLimit))
			require.NoError(t, err)
			assert.Greater(t, lease.Token(), last, "token %d of holder %d", lease.Token(), i)
			last = lease.Token()
			keys[lease.(*Lease).Key()] = true
			assert.Equal(t, last, uint64(lease.(*Lease).rev))

			_, err = l.TryAcquire(bg)
			assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire while held")
			_, err = NewLockOrFail(t, other, t.Name()).TryAcquire(bg)
			assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire from another client while held")

			ttl, expires := lease.TTL()
			assert.True(t, expires)
			assert.Greater(t, ttl, time.Second)
			assert.LessOrEqual(t, ttl, 2*time.Second)
			assert.NoError(t, lease.Extend(bg, time.Second))
			assert.ErrorIs(t, lease.Extend(bg, 0), ErrBadTTL)
			assert.ErrorIs(t, lease.Extend(bg, 3*time.Second), ErrBadTTL, "etcd cannot extend past the granted TTL")

			require.NoError(t, lease.Release(bg))
			assert.ErrorIs(t, lease.Release(bg), contend.ErrNotHeld, "Release twice")
			assert.ErrorIs(t, lease.Extend(bg, time.Second), contend.ErrNotHeld, "Extend after Release")
			ttl, _ = lease.TTL()
			assert.Zero(t, ttl, "TTL after Release")
			assert.Empty(t, queued(t, raw, t.Name()), "Release left a key")

			lease, err = l.TryAcquire(bg)
			require.NoError(t, err, "TryAcquire on a free lock")
			keys[lease.(*Lease).Key()] = true
			assert.Greater(t, lease.Token(), last)
			last = lease.Token()
			require.NoError(t, lease.Release(bg))
		}
	})

	t.Run("ctx-done-before", func(t *testing.T) {
		l := newLock(t, c)
		done, cancel := context.WithCancel(bg)
		cancel()
		rt := c.RoundTrips()
		_, err := l.Acquire(done)
		assert.ErrorIs(t, err, context.Canceled, "Acquire on a free lock with a done ctx")
		_, err = l.TryAcquire(done)
		assert.ErrorIs(t, err, context.Canceled, "TryAcquire on a free lock with a done ctx")
		assert.NotErrorIs(t, err, contend.ErrHeld)
		assert.Equal(t, rt, c.RoundTrips(), "a done ctx sent requests")
		assert.Empty(t, queued(t, raw, t.Name()))
	})

	t.Run("cancelled-waiter-cleaned-up", func(t *testing.T) {
		l := newLock(t, c)
		held, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		start := time.Now()
		_, err = NewLockOrFail(t, other, t.Name()).Acquire(ctxFor(t, 300*time.Millisecond))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second, "Acquire overran its ctx")
		settle(t, other)
		assert.Equal(t, []string{held.(*Lease).Key()}, queued(t, raw, t.Name()), "the cancelled waiter's key is still queued")
		require.NoError(t, held.Release(bg))
		assert.Empty(t, queued(t, raw, t.Name()))
	})

	t.Run("fifo-and-recheck", func(t *testing.T) {
		// A holds; B and C queue behind it, C watching B. B leaves: C's
		// watch fires, but A still holds, so C must look again rather than
		// take the lock. Then A releases and C holds.
		l := newLock(t, c)
		a, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		bctx, cancelB := context.WithCancel(bg)
		b := lockAsync(bctx, l)
		waitQueued(t, raw, t.Name(), 2)
		cc := lockAsync(ctxFor(t, waitLimit), NewLockOrFail(t, other, t.Name()))
		waitQueued(t, raw, t.Name(), 3)
		cancelB()
		assert.ErrorIs(t, within(t, b, 2*time.Second, "the cancelled B").err, context.Canceled)
		waitQueued(t, raw, t.Name(), 2)
		pending(t, cc, 300*time.Millisecond, "C, while A holds")
		_, err = l.TryAcquire(bg)
		assert.ErrorIs(t, err, contend.ErrHeld)
		require.NoError(t, a.Release(bg))
		r := within(t, cc, 3*time.Second, "C after A's release")
		require.NoError(t, r.err)
		assert.Greater(t, r.lease.Token(), a.Token())
		require.NoError(t, r.lease.Release(bg))
	})

	t.Run("fifo-order", func(t *testing.T) {
		l := newLock(t, c)
		head, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		const n = 5
		var order [n]<-chan result
		for i := range n {
			order[i] = lockAsync(ctxFor(t, waitLimit), l)
			waitQueued(t, raw, t.Name(), i+2)
		}
		require.NoError(t, head.Release(bg))
		for i := range n {
			r := within(t, order[i], 3*time.Second, "waiter in order")
			require.NoError(t, r.err)
			for j := i + 1; j < n; j++ {
				pending(t, order[j], 0, "a waiter behind the holder")
			}
			require.NoError(t, r.lease.Release(bg))
		}
	})

	t.Run("fenced-write-after-expiry", func(t *testing.T) {
		// The holder's client stops refreshing its lease (a stalled
		// process): etcd revokes it a TTL later, the next waiter holds,
		// and the stale holder's fenced write is refused by etcd.
		stale := newTestClient(t, eps, time.Second)
		l := NewLockOrFail(t, stale, t.Name())
		old, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		require.NoError(t, old.(*Lease).FencedPut(bg, t.Name()+"-resource", "old holder, in time"))
		next := lockAsync(ctxFor(t, waitLimit), NewLockOrFail(t, c, t.Name()))
		pending(t, next, 200*time.Millisecond, "the next holder while the lease is refreshed")
		stale.Orphan()
		start := time.Now()
		r := within(t, next, 5*time.Second, "the next holder after the orphaned lease expired")
		require.NoError(t, r.err)
		t.Logf("the lock passed on %v after the holder stopped refreshing a 1 s lease", time.Since(start).Round(time.Millisecond))
		assert.Greater(t, r.lease.Token(), old.Token())

		// The stale holder does not know yet (its TTL may even show time
		// left), but etcd refuses its write, and takes the new holder's.
		err = old.(*Lease).FencedPut(bg, t.Name()+"-resource", "old holder, stale")
		assert.ErrorIs(t, err, ErrFenced)
		assert.ErrorIs(t, err, contend.ErrNotHeld)
		require.NoError(t, r.lease.FencedPut(bg, t.Name()+"-resource", "new holder"))
		got, err := raw.Get(bg, t.Name()+"-resource")
		require.NoError(t, err)
		assert.Equal(t, "new holder", string(got.Kvs[0].Value))

		assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld, "Release of an expired lease")
		assert.ErrorIs(t, old.Extend(bg, time.Second), contend.ErrNotHeld, "Extend of an expired lease")
		require.Eventually(t, func() bool { ttl, _ := old.TTL(); return ttl == 0 }, 3*time.Second, 10*time.Millisecond,
			"the expired lease's TTL never reached 0")
		require.NoError(t, r.lease.Release(bg))

		// The orphaning client takes a new lease for its next acquisition.
		again, err := l.Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		require.NoError(t, again.(*Lease).FencedPut(bg, t.Name()+"-resource", "old client, new lease"))
		require.NoError(t, again.Release(bg))
	})

	t.Run("fenced-write-after-revoke", func(t *testing.T) {
		victim := newTestClient(t, eps, 2*time.Second)
		old, err := NewLockOrFail(t, victim, t.Name()).Acquire(ctxFor(t, waitLimit))
		require.NoError(t, err)
		_, err = raw.Revoke(bg, old.(*Lease).s.id)
		require.NoError(t, err)
		next, err := NewLockOrFail(t, c, t.Name()).TryAcquire(bg)
		require.NoError(t, err, "the lock is free once the holder's lease is revoked")
		assert.ErrorIs(t, old.(*Lease).FencedPut(bg, t.Name()+"-resource", "stale"), ErrFenced)
		assert.ErrorIs(t, old.Extend(bg, time.Second), contend.ErrNotHeld)
		assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld)
		assert.NoError(t, next.(*Lease).FencedPut(bg, t.Name()+"-resource", "fresh"))
		assert.Error(t, next.(*Lease).FencedPut(bg, next.(*Lease).Key(), "x"), "FencedPut on the lock's own key")
		require.NoError(t, next.Release(bg))
		assert.ErrorIs(t, next.(*Lease).FencedPut(bg, t.Name()+"-resource", "released"), contend.ErrNotHeld)
	})

	t.Run("cancelled-before-release", func(t *testing.T) {
		// x/sync's go.dev/issue/63615 on the lock: the waiter's ctx ends
		// before the holder releases, so the waiter must fail, and leave the
		// lock free.
		l := newLock(t, c)
		for range 5 {
			held, err := l.Acquire(ctxFor(t, waitLimit))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(bg)
			w := lockAsync(ctx, l)
			waitQueued(t, raw, t.Name(), 2)
			cancel()
			require.NoError(t, held.Release(bg))
			r := within(t, w, 3*time.Second, "the cancelled waiter")
			assert.ErrorIs(t, r.err, context.Canceled)
			settle(t, c)
			lease, err := l.TryAcquire(bg)
			require.NoError(t, err, "the lock is left held")
			require.NoError(t, lease.Release(bg))
		}
	})
}

// NewLockOrFail is NewLock(c, prefix), failing t on an error.
func NewLockOrFail(t *testing.T, c *Client, prefix string) *Lock {
	t.Helper()
	l, err := NewLock(c, prefix)
	require.NoError(t, err)
	return l
}

// lostReply is a unary interceptor that, for the first n Txn calls once
// armed, sends the request late, after delay, in the background, and
// answers the caller at once with Unavailable: a request whose reply was
// lost and that the server applies after the caller gave up on it.
type lostReply struct {
	armed atomic.Int32
	delay time.Duration
	late  chan error // the late requests' outcomes
}

func (f *lostReply) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method != "/etcdserverpb.KV/Txn" || f.armed.Add(-1) < 0 {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	// The late request has a reply and call options of its own: the
	// caller's (the etcd client's grpc.Peer among them) are the caller's.
	late := reflect.New(reflect.TypeOf(reply).Elem()).Interface()
	go func() {
		time.Sleep(f.delay)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.late <- invoker(ctx, method, req, late, cc)
	}()
	return status.Error(codes.Unavailable, "test: reply lost")
}

// TestLockLostReply: the transaction that queues an Acquire's key loses
// its reply and reaches the server only after the Acquire has given up on
// it and queued another key. The abandoned request must create nothing,
// or the key would sit in the queue on a live lease forever.
func TestLockLostReply(t *testing.T) {
	cl := startSingle(t)
	raw := rawClient(t, cl.Endpoints())
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		{"applied-before-cleanup", 0},
		{"applied-after-cleanup", 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &lostReply{delay: tc.delay, late: make(chan error, 1)}
			c := newTestClient(t, cl.Endpoints(), 2*time.Second, grpc.WithChainUnaryInterceptor(f.intercept))
			l := NewLockOrFail(t, c, t.Name())
			f.armed.Store(1)
			lease, err := l.Acquire(ctxFor(t, 5*time.Second))
			require.NoError(t, err)
			require.NoError(t, <-f.late, "the late request")
			settle(t, c)
			assert.Equal(t, []string{lease.(*Lease).Key()}, queued(t, raw, t.Name()), "the abandoned request left a key")
			require.NoError(t, lease.Release(bg))
			assert.Empty(t, queued(t, raw, t.Name()))

			// Release's reply lost: its retry finds the key gone, while the
			// lease lives, so the first attempt deleted it.
			lease, err = l.Acquire(ctxFor(t, waitLimit))
			require.NoError(t, err)
			f.armed.Store(1)
			require.NoError(t, lease.Release(bg), "a Release whose reply was lost")
			require.NoError(t, <-f.late)
			assert.Empty(t, queued(t, raw, t.Name()))

			f.armed.Store(1)
			_, err = l.TryAcquire(bg)
			require.Error(t, err, "TryAcquire whose reply was lost")
			assert.NotErrorIs(t, err, contend.ErrHeld)
			require.NoError(t, <-f.late)
			settle(t, c)
			assert.Empty(t, queued(t, raw, t.Name()), "the abandoned TryAcquire left a key")
			lease, err = l.TryAcquire(bg)
			require.NoError(t, err, "the lock is left held")
			require.NoError(t, lease.Release(bg))
		})
	}
}

func TestBadInput(t *testing.T) {
	eps := []string{"127.0.0.1:1"} // nothing listens: none of this may reach a server
	_, err := NewClient(nil, time.Second)
	assert.Error(t, err, "no endpoints")
	_, err = NewClient([]string{""}, time.Second)
	assert.Error(t, err, "an empty endpoint")
	for _, ttl := range []time.Duration{-time.Second, 0, 999 * time.Millisecond} {
		_, err = NewClient(eps, ttl)
		assert.ErrorIs(t, err, ErrBadTTL, "ttl %v", ttl)
		_, err = NewLockAt(eps, "k", ttl)
		assert.ErrorIs(t, err, ErrBadTTL, "NewLockAt ttl %v", ttl)
		_, err = NewSemaphoreAt(eps, "k", 1, ttl)
		assert.ErrorIs(t, err, ErrBadTTL, "NewSemaphoreAt ttl %v", ttl)
	}
	c, err := NewClient(eps, 1500*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, int64(2), c.ttlSec, "1.5 s rounds up to 2 s")

	_, err = NewLock(nil, "k")
	assert.Error(t, err, "nil client")
	_, err = NewLock(c, "")
	assert.Error(t, err, "empty prefix")
	_, err = NewSemaphore(nil, "k", 1)
	assert.Error(t, err)
	_, err = NewSemaphore(c, "", 1)
	assert.Error(t, err)
	for _, capacity := range []int64{0, -1} {
		var ce *contend.ConfigError
		_, err = NewSemaphore(c, "k", capacity)
		assert.ErrorAs(t, err, &ce, "capacity %d", capacity)
		_, err = NewSemaphoreAt(eps, "k", capacity, time.Second)
		assert.ErrorAs(t, err, &ce, "NewSemaphoreAt capacity %d", capacity)
	}
	l, err := NewLock(c, "k")
	require.NoError(t, err)
	s, err := NewSemaphore(c, "k", 2)
	require.NoError(t, err)
	var pe *contend.PermitError
	for _, n := range []int64{0, -1, 3} {
		_, err = s.Acquire(ctxFor(t, waitLimit), n)
		assert.ErrorAs(t, err, &pe, "Acquire(%d)", n)
		_, err = s.TryAcquire(bg, n)
		assert.ErrorAs(t, err, &pe, "TryAcquire(%d)", n)
	}

	require.NoError(t, c.Close())
	assert.NoError(t, c.Close(), "Close twice")
	_, err = l.Acquire(ctxFor(t, waitLimit))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = l.TryAcquire(bg)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.Acquire(ctxFor(t, waitLimit), 1)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.TryAcquire(bg, 1)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = NewLock(c, "k")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = NewSemaphore(c, "k", 1)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestZeroValues(t *testing.T) {
	var (
		c Client
		l Lock
		s Semaphore
		h Lease
	)
	assert.ErrorIs(t, c.Close(), contend.ErrNotConstructed)
	assert.ErrorIs(t, c.Settle(bg), contend.ErrNotConstructed)
	assert.Zero(t, c.RoundTrips())
	c.Orphan()
	_, err := NewLock(&c, "k")
	assert.ErrorIs(t, err, contend.ErrNotConstructed)

	_, err = l.Acquire(ctxFor(t, waitLimit))
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = l.TryAcquire(bg)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	assert.ErrorIs(t, l.Close(), contend.ErrNotConstructed)
	assert.Zero(t, l.RoundTrips())

	_, err = s.Acquire(ctxFor(t, waitLimit), 1)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = s.TryAcquire(bg, 1)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	assert.Zero(t, s.Capacity())
	assert.ErrorIs(t, s.Close(), contend.ErrNotConstructed)

	assert.Zero(t, h.Token())
	assert.ErrorIs(t, h.Release(bg), contend.ErrNotConstructed)
	assert.ErrorIs(t, h.Extend(bg, time.Second), contend.ErrNotConstructed)
	assert.ErrorIs(t, h.FencedPut(bg, "x", "y"), contend.ErrNotConstructed)
	ttl, expires := h.TTL()
	assert.Zero(t, ttl)
	assert.True(t, expires)
}
