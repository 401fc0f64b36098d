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
	zeros := map[string]any{"RedsyncLock": &RedsyncLock{}, "RedisLockRef": &RedisLockRef{}, "RedisRateBucket": &RedisRateBucket{}}
	options := []string{"RedisLockOption"}
	var covered []string
	for name, v := range zeros {
		covered = append(covered, name)
		t.Run(name, func(t *testing.T) { redistest.CheckZero(t, v) })
	}
	assert.ElementsMatch(t, redistest.ExportedTypes(t, "."), append(covered, options...), "a new exported type needs a zero-value check")
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
