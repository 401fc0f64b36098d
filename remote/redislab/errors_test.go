package redislab

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
	"github.com/contend-lab/contend/internal/redisx"
)

// clientWith returns a client of addr configured as NewClient's, changed
// by edit, closed when t ends.
func clientWith(t *testing.T, addr string, edit func(*redis.Options)) *redis.Client {
	o := NewClient(addr).Options()
	edit(o)
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// acquirers are the waiting calls of the lab's designs over clients, each on
// key.
func acquirers(t *testing.T, clients []*redis.Client, key string) map[string]func(context.Context) error {
	l, err := NewLock(clients[0], key, time.Second)
	require.NoError(t, err)
	s, err := NewSemaphore(clients[0], key+"-sem", 1, time.Second)
	require.NoError(t, err)
	// A node timeout long enough for a TLS handshake on a starved machine.
	r, err := NewRedlock(clients, key+"-rl", time.Second, WithNodeTimeout(time.Second))
	require.NoError(t, err)
	return map[string]func(context.Context) error{
		"Lock.Acquire":         func(ctx context.Context) error { _, err := l.Acquire(ctx); return err },
		"Lock.TryAcquire":      func(ctx context.Context) error { _, err := l.TryAcquire(ctx); return err },
		"Semaphore.Acquire":    func(ctx context.Context) error { _, err := s.Acquire(ctx, 1); return err },
		"Semaphore.TryAcquire": func(ctx context.Context) error { _, err := s.TryAcquire(ctx, 1); return err },
		"Redlock.Acquire":      func(ctx context.Context) error { _, err := r.Acquire(ctx); return err },
		"Redlock.TryAcquire":   func(ctx context.Context) error { _, err := r.TryAcquire(ctx); return err },
	}
}

// Errors that will never clear end Acquire at once, even without a
// deadline, where they used to be retried until the context ended:
// a password refused (WRONGPASS) or missing (NOAUTH) on a server started
// with --requirepass, a key of the wrong type (WRONGTYPE), a TLS client
// talking to a server without TLS.
func TestPermanentErrorsReturnAtOnce(t *testing.T) {
	secured := redistest.StartWith(t, "--requirepass", "secret")
	tlsAddr, _ := redistest.StartTLS(t)
	_, plain := redistest.Servers(t, 1)
	typed := plain[0]
	ctx := redistest.Ctx(t, 10*time.Second)
	// The wrong types: the lock key a hash, the semaphore's holders a string.
	require.NoError(t, typed.HSet(ctx, "typed", "f", "v").Err())
	require.NoError(t, typed.Set(ctx, "typed-sem:holders", "v", 0).Err())
	require.NoError(t, typed.HSet(ctx, "typed-rl", "f", "v").Err())

	for _, tc := range []struct {
		name   string
		client *redis.Client
		key    string
		want   string // the reply's code
	}{
		{"wrong password", clientWith(t, secured, func(o *redis.Options) { o.Password = "wrong" }), "k", "WRONGPASS"},
		// Redis refuses a long request from a client that has not
		// authenticated before it gets to NOAUTH.
		{"no password", clientWith(t, secured, func(*redis.Options) {}), "k", "unauthenticated"},
		{"wrong type", typed, "typed", "WRONGTYPE"},
		// A generous dial timeout: the handshake must fail on the
		// certificate, not on a starved machine's clock.
		{"TLS certificate not trusted", clientWith(t, tlsAddr, func(o *redis.Options) {
			o.TLSConfig, o.DialTimeout = &tls.Config{}, 5*time.Second
		}), "k", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, call := range acquirers(t, []*redis.Client{tc.client}, tc.key) {
				var err error
				redistest.Within(t, 2*time.Second, name, func() { err = call(ctx) })
				require.Error(t, err, name)
				t.Logf("%s: %v", name, err)
				assert.Contains(t, err.Error(), tc.want, name)
				assert.NotErrorIs(t, err, context.DeadlineExceeded, "%s waited for its context: %v", name, err)
				assert.False(t, redisx.Transient(err), "%s: %v classified transient", name, err)
				assert.Empty(t, redistest.RepeatedPrefix(err.Error()), "%s: %v", name, err)
				if tc.want != "certificate" {
					var re redis.Error
					assert.ErrorAs(t, err, &re, "%s: the server's reply, wrapped", name)
				}
			}
		})
	}
}

// Redlock counts a server that refuses for good as one that never grants:
// with one of three refusing it still grants; with two it fails at once
// with ErrNoQuorum and the servers' replies.
func TestRedlockPermanentErrors(t *testing.T) {
	_, clients := redistest.Servers(t, 3)
	ctx := redistest.Ctx(t, 10*time.Second)
	require.NoError(t, clients[0].HSet(ctx, "rp", "f", "v").Err())
	r, err := NewRedlock(clients, "rp", time.Second)
	require.NoError(t, err)
	lease, err := r.Acquire(ctx)
	require.NoError(t, err, "one server of three refusing")
	require.NoError(t, lease.Release(ctx))

	require.NoError(t, clients[1].HSet(ctx, "rp", "f", "v").Err())
	redistest.Within(t, 2*time.Second, "Redlock.Acquire with two servers refusing", func() { _, err = r.Acquire(ctx) })
	assert.ErrorIs(t, err, ErrNoQuorum)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "WRONGTYPE")
	_, err = r.TryAcquire(ctx)
	assert.ErrorIs(t, err, ErrNoQuorum)
	assert.NotErrorIs(t, err, contend.ErrHeld, "refusals are not 'held by another'")
}

// An Acquire that runs out of time says why it was still waiting: the
// network error it last met (not the deadline its last attempt died of),
// no reply from a stalled server, or the lock held.
func TestAcquireTimeoutNamesCause(t *testing.T) {
	servers := redistest.Start(t, 3)
	ctx := redistest.Ctx(t, 10*time.Second)
	// Clients whose own timeouts are far beyond the calls' deadlines, with
	// connections made before the faults: what ends a call is then its
	// deadline, not go-redis's timeouts on a starved machine.
	clients := make([]*redis.Client, len(servers))
	for i, s := range servers {
		clients[i] = clientWith(t, s.Addr(), func(o *redis.Options) {
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
		})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { require.NoError(t, clients[i].Ping(ctx).Err()) })
		}
		wg.Wait()
	}
	holder, err := NewLock(clients[0], "cause", 5*time.Second)
	require.NoError(t, err)
	_, err = holder.TryAcquire(ctx)
	require.NoError(t, err)
	sem, err := NewSemaphore(clients[0], "cause-sem", 1, 5*time.Second)
	require.NoError(t, err)
	_, err = sem.TryAcquire(ctx, 1)
	require.NoError(t, err)
	for name, call := range acquirers(t, clients, "cause") {
		if name == "Lock.Acquire" || name == "Semaphore.Acquire" {
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err := call(short)
			cancel()
			assert.ErrorIs(t, err, context.DeadlineExceeded, name)
			assert.Contains(t, err.Error(), "(held by another holder)", name)
		}
	}
	_ = servers[1].Pause()
	_ = servers[2].Pause()
	require.NoError(t, servers[0].Pause())
	for name, call := range acquirers(t, clients, "paused") {
		if name == "Lock.Acquire" || name == "Semaphore.Acquire" {
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := call(short)
			cancel()
			assert.ErrorIs(t, err, context.DeadlineExceeded, name)
			assert.Contains(t, err.Error(), "(no reply from Redis)", name)
		}
	}
	for _, s := range servers {
		require.NoError(t, s.Resume())
		require.NoError(t, s.Kill())
	}
	for name, call := range acquirers(t, clients, "killed") {
		if name == "Lock.TryAcquire" || name == "Semaphore.TryAcquire" || name == "Redlock.TryAcquire" {
			continue
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := call(short)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded, name)
		assert.Contains(t, err.Error(), "connection refused", name)
		assert.NotContains(t, err.Error(), "(last error: context deadline exceeded)", name)
		assert.Empty(t, redistest.RepeatedPrefix(err.Error()), "%s: %v", name, err)
	}
}

// No error names its package twice ("redislab: NewLock: redislab: ...").
func TestErrorsSayTheirPrefixOnce(t *testing.T) {
	_, clients := redistest.Servers(t, 3)
	ctx := redistest.Ctx(t, 10*time.Second)
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	var errs []error
	add := func(_ any, err error) { errs = append(errs, err) }
	add(NewLock(plain, "k", time.Second))
	add(NewLock(clients[0], "k", 0))
	add(NewLock(nil, "k", time.Second))
	add(NewSemaphore(clients[0], "k", 0, time.Second))
	add(NewSemaphore(plain, "k", 1, time.Second))
	add(NewRedlock(nil, "k", time.Second))
	add(NewRedlock([]*redis.Client{plain}, "k", time.Second))
	add(NewBucket(plain, "k", contend.BucketConfig{Capacity: 1, Rate: 1}))
	l, err := NewLock(clients[0], "prefix", time.Second)
	require.NoError(t, err)
	a, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	add(l.TryAcquire(ctx))
	errs = append(errs, a.Extend(ctx, 0))
	require.NoError(t, a.Release(ctx))
	errs = append(errs, a.Release(ctx), a.Extend(ctx, time.Second))
	r, err := NewRedlock(clients, "prefix", time.Second)
	require.NoError(t, err)
	ra, err := r.TryAcquire(ctx)
	require.NoError(t, err)
	add(r.TryAcquire(ctx))
	require.NoError(t, ra.Release(ctx))
	errs = append(errs, ra.Release(ctx), ra.Extend(ctx, time.Second))
	dead := NewClient("127.0.0.1:1")
	defer dead.Close()
	unreachable, err := NewRedlock([]*redis.Client{dead}, "prefix", time.Second)
	require.NoError(t, err)
	add(unreachable.TryAcquire(ctx))
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	add(unreachable.Acquire(short))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	add(l.Acquire(cancelled))
	add(r.Acquire(cancelled))
	add((&Lock{}).Acquire(ctx))
	for _, err := range errs {
		if assert.Error(t, err) {
			assert.Empty(t, redistest.RepeatedPrefix(err.Error()), "%v", err)
		}
	}
}
