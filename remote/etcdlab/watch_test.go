package etcdlab

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// TestDeletions checks the shared watch's promises to its subscribers
// directly: a deletion after the subscription's revision wakes it at once
// (not after recheckEvery), also when the watch saw the deletion before the
// subscription arrived, and a revision older than the watch can vouch for
// makes the subscription stale.
func TestDeletions(t *testing.T) {
	cl := startSingle(t)
	raw := rawClient(t, cl.Endpoints())
	c := newTestClient(t, cl.Endpoints(), 2*time.Second)
	d := newDeletions(c, "del/")
	d.linger = 0 // stop the watch as soon as the last subscriber leaves
	put := func(key string) int64 {
		resp, err := raw.Put(bg, key, "")
		require.NoError(t, err)
		return resp.Header.Revision
	}
	del := func(key string) int64 {
		resp, err := raw.Delete(bg, key)
		require.NoError(t, err)
		return resp.Header.Revision
	}
	woken := func(s *sub) bool {
		select {
		case <-s.wake:
			return true
		case <-time.After(recheckEvery / 2):
			return false
		}
	}

	// The watch outlives its last subscriber by watchLinger.
	lingering := newDeletions(c, "linger/")
	lingering.unsubscribe(lingering.subscribe(put("linger/x"), "linger/x"))
	lingering.mu.Lock()
	assert.NotNil(t, lingering.cancel, "the watch stopped with its last subscriber")
	lingering.mu.Unlock()

	put("del/a")
	put("del/b")
	rev := put("del/c")
	keeper := d.subscribe(rev, "del/c") // keeps the watch running
	ready := func() {
		t.Helper()
		require.Eventually(t, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.ready },
			2*time.Second, 5*time.Millisecond, "the watch never started")
	}
	ready() // a deletion before the watch starts would make the subscribers stale
	s := d.subscribe(rev, "del/a", "del/x")
	del("del/b") // not of interest

	assert.False(t, woken(s), "woken by the deletion of a key it does not wait for")
	del("del/a")
	require.True(t, woken(s), "not woken by the deletion it waits for")
	hit, stale := d.take(s)
	assert.Equal(t, []string{"del/a"}, hit)
	assert.False(t, stale)
	d.unsubscribe(s)

	// A subscriber whose read predates a deletion the watch has already
	// seen learns of it at once.
	put("del/d")
	rev = put("del/e")
	del("del/d")
	require.Eventually(t, func() bool { d.mu.Lock(); defer d.mu.Unlock(); _, ok := d.gone["del/d"]; return ok },
		2*time.Second, 5*time.Millisecond, "the watch never saw the deletion")
	s = d.subscribe(rev, "del/d")
	require.True(t, woken(s), "a deletion seen before the subscription was missed")
	hit, _ = d.take(s)
	assert.Equal(t, []string{"del/d"}, hit)
	d.unsubscribe(s)

	// Older than the watch can vouch for: stale.
	d.mu.Lock()
	from := d.from
	d.mu.Unlock()
	s = d.subscribe(from-1, "del/e")
	require.True(t, woken(s))
	_, stale = d.take(s)
	assert.True(t, stale, "a revision before the watch's history is not stale")
	d.unsubscribe(s)

	// The last subscriber stops the watch (after linger); the next one
	// starts it again.
	d.unsubscribe(keeper)
	require.Eventually(t, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.cancel == nil },
		time.Second, 5*time.Millisecond, "the watch runs with no subscriber")
	d.mu.Lock()
	assert.Empty(t, d.all)
	d.mu.Unlock()
	rev = put("del/f")
	s = d.subscribe(rev, "del/f")
	ready()
	del("del/f")
	require.True(t, woken(s), "the restarted watch missed a deletion")
	hit, stale = d.take(s)
	assert.Equal(t, []string{"del/f"}, hit)
	assert.False(t, stale)
	d.unsubscribe(s)

	// A watch that starts after a subscriber's revision cannot vouch for
	// what happened in between: the subscriber goes stale when it starts.
	require.Eventually(t, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.cancel == nil },
		time.Second, 5*time.Millisecond, "the watch runs with no subscriber")
	rev = put("del/g")
	put("del/h") // the watch will start after this
	s = d.subscribe(rev, "del/g")
	require.True(t, woken(s))
	_, stale = d.take(s)
	assert.True(t, stale, "a subscriber older than the watch's start was not told to read again")
	d.unsubscribe(s)
}

// stallWatch is a gRPC stream interceptor that makes the first watch
// stream opened once armed deliver nothing, as a stream to a paused member
// does.
type stallWatch struct{ armed atomic.Bool }

func (s *stallWatch) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err == nil && method == "/etcdserverpb.Watch/Watch" && s.armed.CompareAndSwap(true, false) {
		return stalledStream{cs}, nil
	}
	return cs, err
}

type stalledStream struct{ grpc.ClientStream }

func (s stalledStream) RecvMsg(any) error {
	<-s.Context().Done()
	return s.Context().Err()
}

// TestWatchStallRestart: the queue's watch stalls under two waiters; the
// first one's fallback re-read finds the key(s) ahead gone, takes the lock
// (or the permit), and replaces the watch, which the second is still
// subscribed to.
func TestWatchStallRestart(t *testing.T) {
	cl := startSingle(t)
	raw := rawClient(t, cl.Endpoints())
	for _, kind := range []string{"lock", "semaphore"} {
		t.Run(kind, func(t *testing.T) {
			stall := &stallWatch{}
			c := newTestClient(t, cl.Endpoints(), 2*time.Second, grpc.WithChainStreamInterceptor(stall.intercept))
			c.recheck = 300 * time.Millisecond
			var acquire func(context.Context) (*Lease, error)
			var d *deletions
			if kind == "lock" {
				l := NewLockOrFail(t, c, t.Name())
				d = l.q.d
				acquire = func(ctx context.Context) (*Lease, error) {
					h, err := l.Acquire(ctx)
					if err != nil {
						return nil, err
					}
					return h.(*Lease), nil
				}
			} else {
				s, err := NewSemaphore(c, t.Name(), 1)
				require.NoError(t, err)
				d = s.q.d
				acquire = func(ctx context.Context) (*Lease, error) {
					h, err := s.Acquire(ctx, 1)
					if err != nil {
						return nil, err
					}
					return h.(*Lease), nil
				}
			}
			a, err := acquire(ctxFor(t, waitLimit))
			require.NoError(t, err)
			stall.armed.Store(true)
			b := acquireAsync(func() (*Lease, error) { return acquire(ctxFor(t, waitLimit)) })
			waitQueued(t, raw, t.Name(), 2)
			cc := acquireAsync(func() (*Lease, error) { return acquire(ctxFor(t, waitLimit)) })
			waitQueued(t, raw, t.Name(), 3)
			require.NoError(t, a.Release(bg))
			rb := within(t, b, 3*time.Second, "B, by its fallback re-read")
			require.NoError(t, rb.err)
			d.mu.Lock()
			gen := d.gen
			d.mu.Unlock()
			assert.Equal(t, 2, gen, "the stalled watch was not replaced")
			require.NoError(t, rb.lease.Release(bg))
			rc := within(t, cc, 3*time.Second, "C")
			require.NoError(t, rc.err)
			require.NoError(t, rc.lease.Release(bg))
		})
	}
}
