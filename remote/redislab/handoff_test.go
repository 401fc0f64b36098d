package redislab

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
)

// patient returns a Lock on key whose waiters do not poll within the
// test (their poll is an hour away, or at the holder's expiry): a waiter
// that gets the lock was woken by a hand-off.
func patient(t *testing.T, c redis.UniversalClient, key string, ttl time.Duration) *Lock {
	t.Helper()
	l, err := NewLock(c, key, ttl)
	require.NoError(t, err)
	l.pollEvery = time.Hour
	return l
}

// holderOf returns the process part of the id that holds key, "" if free.
func holderOf(t *testing.T, c *redis.Client, key string) string {
	t.Helper()
	v, err := c.Get(context.Background(), key).Result()
	if err == redis.Nil {
		return ""
	}
	require.NoError(t, err)
	process, _, _ := strings.Cut(v, ".")
	return process
}

// waitQueued waits until key's queue holds n waiters.
func waitQueued(t *testing.T, c *redis.Client, key string, n int64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for c.ZCard(context.Background(), key+":queue").Val() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s:queue never held %d waiters", key, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Waiters are served in the order they queued, each woken by the release
// before it (none polls), and a hand-off's fencing token exceeds the last.
func TestLockFIFOHandoff(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 3*time.Second)
	l := patient(t, c, "fifo-lock", 5*time.Second)
	hold, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	const waiters = 5
	type grant struct {
		who   int
		token uint64
		ttl   time.Duration
	}
	order := make(chan grant, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() {
			lease, err := l.Acquire(ctx)
			if !assert.NoError(t, err, "waiter %d: woken by nobody", i) {
				return
			}
			ttl, _ := lease.TTL()
			order <- grant{i, lease.Token(), ttl}
			time.Sleep(5 * time.Millisecond)
			assert.NoError(t, lease.Release(ctx))
		})
		waitQueued(t, c, "fifo-lock", int64(i+1))
	}
	_, err = l.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire overtook the queue")
	require.NoError(t, hold.Release(ctx))
	wg.Wait()
	close(order)
	want, last := 0, hold.Token()
	for g := range order {
		assert.Equal(t, want, g.who, "waiter %d served in place %d", g.who, want)
		assert.Greater(t, g.token, last, "a hand-off's token must exceed the one before")
		assert.True(t, g.ttl > 0 && g.ttl <= 5*time.Second, "a handed lease's TTL %v", g.ttl)
		want, last = want+1, g.token
	}
	assert.Equal(t, waiters, want)
	assert.Zero(t, c.Exists(ctx, "fifo-lock", "fifo-lock:queue", "fifo-lock:qexp").Val(), "keys left behind")
	// The listener stops once nobody waits, after its BLPOP returns.
	require.Eventually(t, func() bool {
		l.wake.mu.Lock()
		defer l.wake.mu.Unlock()
		return !l.wake.running
	}, wakeBlock+time.Second, 10*time.Millisecond, "the wake-up listener outlived its waiters")
}

// A lock released in one process (Lock value) is handed to a waiter of
// another, woken through that process's list by its listener.
func TestLockHandoffAcrossProcesses(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 3*time.Second)
	a := patient(t, c, "xproc", 5*time.Second)
	b := patient(t, c, "xproc", 5*time.Second)
	hold, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	got := make(chan contend.Lease, 1)
	go func() {
		lease, err := b.Acquire(ctx)
		assert.NoError(t, err, "the waiter in the other process was never woken")
		got <- lease
	}()
	waitQueued(t, c, "xproc", 1)
	require.NoError(t, hold.Release(ctx))
	lease := <-got
	require.NotNil(t, lease)
	assert.Equal(t, b.wake.process, holderOf(t, c, "xproc"))
	assert.Greater(t, lease.Token(), hold.Token())
	require.NoError(t, lease.Release(ctx))
	assert.Zero(t, c.Exists(ctx, "xproc").Val())
}

// A waiter gone without a word cannot block the queue: a lock handed to a
// waiter that gave up is passed on by its abandonment; a waiter that
// stopped polling is skipped; one whose process died just after its last
// poll holds the lock at most one ttl, as a crashed holder does.
func TestLockDeadWaiters(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 10*time.Second)
	const ttl = 300 * time.Millisecond
	// ghost queues id in process "ghost", which has no listener.
	ghost := func(l *Lock, id string) {
		tok, _, err := l.node.acquire(ctx, "ghost."+id, true, false)
		require.NoError(t, err)
		require.Zero(t, tok)
	}
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		// between runs after the ghost and the live waiter queued and the
		// holder released; it returns the earliest the live waiter may
		// get the lock.
		between func(l *Lock) time.Time
		before  func(l *Lock)
	}{
		{"abandoned after the hand-off", ttl, func(l *Lock) time.Time {
			require.Equal(t, "ghost", holderOf(t, c, l.node.keys[0]))
			require.NoError(t, l.node.abandon(ctx, "ghost.1"))
			assert.NotEqual(t, "ghost", holderOf(t, c, l.node.keys[0]), "the abandonment kept the lock")
			return time.Time{}
		}, nil},
		{"stopped polling", 5 * time.Second, func(l *Lock) time.Time {
			assert.NotEqual(t, "ghost", holderOf(t, c, l.node.keys[0]), "the lock went to a waiter that stopped polling")
			return time.Time{}
		}, func(*Lock) {
			time.Sleep(waiterStale + 100*time.Millisecond)
		}},
		{"crashed just after its last poll", ttl, func(l *Lock) time.Time {
			require.Equal(t, "ghost", holderOf(t, c, l.node.keys[0]), "the lock goes to the live-looking ghost")
			return time.Now().Add(ttl / 2)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "dead:" + tc.name
			l, err := NewLock(c, key, tc.ttl)
			require.NoError(t, err)
			hold, err := l.TryAcquire(ctx)
			require.NoError(t, err)
			ghost(l, "1")
			if tc.before != nil {
				tc.before(l)
			}
			waiter, err := NewLock(c, key, tc.ttl)
			require.NoError(t, err)
			got := make(chan time.Time, 1)
			go func() {
				lease, err := waiter.Acquire(ctx)
				if assert.NoError(t, err) {
					got <- time.Now()
					_ = lease.Release(ctx)
				}
				close(got)
			}()
			waitQueued(t, c, key, 2)
			require.NoError(t, hold.Release(ctx))
			earliest := tc.between(l)
			at, ok := <-got
			require.True(t, ok)
			assert.False(t, at.Before(earliest), "the waiter got the lock while the crashed waiter's hand-off was valid")
		})
	}
}

// A waiting acquire replayed (go-redis retried it) keeps one place in the
// queue.
func TestLockQueueReplay(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 5*time.Second)
	l, err := NewLock(c, "qreplay", time.Second)
	require.NoError(t, err)
	hold, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	for range 3 {
		tok, not, err := l.node.acquire(ctx, "p.w", true, false)
		require.NoError(t, err)
		assert.Zero(t, tok)
		assert.Positive(t, not.pttl)
		assert.GreaterOrEqual(t, not.fence, hold.Token())
	}
	assert.Equal(t, int64(1), c.ZCard(ctx, "qreplay:queue").Val())
	// The hand-off goes to p.w; its replay then finds the lock its own.
	require.NoError(t, hold.Release(ctx))
	tok, _, err := l.node.acquire(ctx, "p.w", true, false)
	require.NoError(t, err)
	assert.Greater(t, tok, hold.Token())
	assert.Zero(t, c.ZCard(ctx, "qreplay:queue").Val())
}

// A wake-up whose token is not above the counter the waiter's last poll
// saw (a stale or forged one) grants nothing: the waiter keeps waiting
// while the holder holds.
func TestLockStaleWakeupGrantsNothing(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 5*time.Second)
	l := patient(t, c, "stale", 5*time.Second)
	hold, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	got := make(chan contend.Lease, 1)
	go func() {
		lease, err := l.Acquire(ctx)
		assert.NoError(t, err)
		got <- lease
	}()
	waitQueued(t, c, "stale", 1)
	id := c.ZRange(ctx, "stale:queue", 0, 0).Val()[0]
	// The listener runs (the waiter queued): feed it a wake-up for the
	// waiter with the holder's own token, and one for a token far below.
	for _, tok := range []uint64{hold.Token(), 1} {
		require.NoError(t, c.RPush(ctx, "stale:wake:"+l.wake.process, lockValue(id, tok)).Err())
	}
	require.Eventually(t, func() bool { return c.LLen(ctx, "stale:wake:"+l.wake.process).Val() == 0 },
		2*time.Second, time.Millisecond, "the listener never popped the wake-ups")
	select {
	case lease := <-got:
		t.Fatalf("a stale wake-up granted a lease (token %d) while the holder held", lease.Token())
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, hold.Release(ctx))
	lease := <-got
	require.NotNil(t, lease)
	assert.Greater(t, lease.Token(), hold.Token())
}

// A replayed waiting acquire keeps its place, ahead of later waiters; and
// TryAcquire on a free lock with a live waiter hands it to the waiter
// instead of taking it.
func TestLockQueueOrderSurvivesReplay(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 5*time.Second)
	l, err := NewLock(c, "order", 50*time.Millisecond)
	require.NoError(t, err)
	_, err = l.TryAcquire(ctx)
	require.NoError(t, err)
	for _, id := range []string{"p.a", "p.b", "p.a"} {
		_, _, err := l.node.acquire(ctx, id, true, false)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"p.a", "p.b"}, c.ZRange(ctx, "order:queue", 0, -1).Val())
	time.Sleep(60 * time.Millisecond) // the holder's lease runs out
	_, err = l.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire took a free lock from a live waiter")
	assert.Equal(t, "p", holderOf(t, c, "order"))
	v := c.Get(ctx, "order").Val()
	assert.True(t, strings.HasPrefix(v, "p.a:"), "the lock went to %q, not the first waiter", v)
}
