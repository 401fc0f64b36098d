package redisref

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
	"github.com/contend-lab/contend/internal/redisx"
)

// Every exported type's zero value refuses at once with
// contend.ErrNotConstructed, and a nil option is ignored.
func TestZeroValues(t *testing.T) {
	redistest.ZeroValues(t, map[string]any{"RedsyncLock": &RedsyncLock{}, "RedisLockRef": &RedisLockRef{}, "RedisRateBucket": &RedisRateBucket{}}, "RedisLockOption")
	c := redisx.NewClient("127.0.0.1:1")
	defer c.Close()
	var none RedisLockOption
	_, err := NewRedisLockRef(c, "k", time.Second, none)
	assert.NoError(t, err)
	_, err = NewRedisLockRef(c, "k", time.Second, WithRetryStrategy(nil))
	assert.Error(t, err)
}

// No error names its package twice.
func TestErrorsSayTheirPrefixOnce(t *testing.T) {
	_, clients := redistest.Servers(t, 3)
	ctx := redistest.Ctx(t, 10*time.Second)
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	var errs []error
	add := func(_ any, err error) { errs = append(errs, err) }
	add(NewRedsyncLock(nil, "k", time.Second))
	add(NewRedsyncLock([]*redis.Client{plain}, "k", time.Second))
	add(NewRedisLockRef(plain, "k", time.Second))
	add(NewRedisLockRef(clients[0], "k", 0))
	add(NewRedisRateBucket(plain, "k", contend.BucketConfig{Capacity: 1, Rate: 1}))
	rs, err := NewRedsyncLock(clients, "prefix", time.Second)
	require.NoError(t, err)
	a, err := rs.TryAcquire(ctx)
	require.NoError(t, err)
	add(rs.TryAcquire(ctx))
	errs = append(errs, a.Extend(ctx, 2*time.Second))
	require.NoError(t, a.Release(ctx))
	errs = append(errs, a.Release(ctx))
	rl, err := NewRedisLockRef(clients[0], "prefix", time.Second)
	require.NoError(t, err)
	b, err := rl.TryAcquire(ctx)
	require.NoError(t, err)
	add(rl.TryAcquire(ctx))
	require.NoError(t, b.Release(ctx))
	errs = append(errs, b.Release(ctx), b.Extend(ctx, time.Second))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	add(rs.Acquire(cancelled))
	add(rl.Acquire(cancelled))
	for _, err := range errs {
		if assert.Error(t, err) {
			assert.Empty(t, redistest.RepeatedPrefix(err.Error()), "%v", err)
		}
	}
}

// Pinned: with a wrong password, redislock returns at once (as the lab's
// locks do), while redsync retries until the context ends.
func TestReferencesOnPermanentErrors(t *testing.T) {
	addr := redistest.StartWith(t, "--requirepass", "secret")
	o := redisx.NewClient(addr).Options()
	o.Password = "wrong"
	c := redis.NewClient(o)
	defer c.Close()
	rl, err := NewRedisLockRef(c, "perm", time.Second)
	require.NoError(t, err)
	rs, err := NewRedsyncLock([]*redis.Client{c}, "perm", time.Second)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = rl.Acquire(ctx)
	assert.Contains(t, err.Error(), "WRONGPASS")
	assert.Less(t, time.Since(start), 250*time.Millisecond, "redislock waited for its context: %v", err)
	_, err = rs.Acquire(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "redsync now returns permanent errors at once: update its doc")
}
