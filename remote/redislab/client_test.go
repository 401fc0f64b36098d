package redislab

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
)

// exercise runs the lab's designs on c, with keys from key (a hash tag
// for a sharded client): two Lock values contending, with a hand-off
// between them, a Semaphore and a Bucket.
func exercise(t *testing.T, c redis.UniversalClient, key string) {
	t.Helper()
	ctx := redistest.Ctx(t, 10*time.Second)
	a, err := NewLock(c, key, 5*time.Second)
	require.NoError(t, err)
	b, err := NewLock(c, key, 5*time.Second)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var last uint64
	var mu sync.Mutex
	for _, l := range []*Lock{a, b, a, b} {
		wg.Go(func() {
			for range 5 {
				lease, err := l.Acquire(ctx)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				assert.Greater(t, lease.Token(), last)
				last = lease.Token()
				mu.Unlock()
				assert.NoError(t, lease.Release(ctx))
			}
		})
	}
	wg.Wait()
	s, err := NewSemaphore(c, key+"sem", 2, time.Second)
	require.NoError(t, err)
	lease, err := s.Acquire(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, lease.Release(ctx))
	bucket, err := NewBucket(c, key+"bucket", contend.BucketConfig{Capacity: 2, Rate: 1})
	require.NoError(t, err)
	ok, err := bucket.TryTakeContext(ctx, 2)
	assert.True(t, ok)
	assert.NoError(t, err)
}

// The constructors take the caller's client with its own settings: a
// password and a database, TLS with the caller's roots, a Redis Cluster
// (with a hash-tagged key) and a Ring.
func TestUserClients(t *testing.T) {
	t.Run("password and DB", func(t *testing.T) {
		addr := redistest.StartWith(t, "--requirepass", "secret")
		c := clientWith(t, addr, func(o *redis.Options) { o.Password, o.DB = "secret", 3 })
		exercise(t, c, "pw")
		ctx := redistest.Ctx(t, time.Second)
		assert.Equal(t, 3, c.ClientInfo(ctx).Val().DB, "the client's own DB")
		n, err := c.Exists(ctx, "pw:fence").Result()
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "the fence is in the client's DB")
	})
	t.Run("TLS", func(t *testing.T) {
		addr, roots := redistest.StartTLS(t)
		exercise(t, clientWith(t, addr, func(o *redis.Options) { o.TLSConfig = &tls.Config{RootCAs: roots} }), "tls")
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.Cluster(t)
		_, err := NewLock(c, "untagged", time.Second)
		var ce *contend.ConfigError
		if assert.ErrorAs(t, err, &ce) {
			assert.Equal(t, "key", ce.Field)
		}
		_, err = NewSemaphore(c, "untagged", 1, time.Second)
		assert.ErrorAs(t, err, &ce)
		exercise(t, c, "{tagged}")
	})
	t.Run("ring", func(t *testing.T) {
		servers := redistest.Start(t, 2)
		o := NewClient("").Options()
		r := redis.NewRing(&redis.RingOptions{
			Addrs:                 map[string]string{"a": servers[0].Addr(), "b": servers[1].Addr()},
			ContextTimeoutEnabled: true, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, DialTimeout: o.DialTimeout,
		})
		t.Cleanup(func() { _ = r.Close() })
		exercise(t, r, "{ring}")
	})
}

func TestClientRequirements(t *testing.T) {
	type wrapped struct{ *redis.Client }
	one := clientWith(t, "127.0.0.1:1", func(o *redis.Options) { o.PoolSize = 1 })
	for name, c := range map[string]redis.UniversalClient{
		"a type whose options cannot be read": wrapped{NewClient("127.0.0.1:1")},
		"PoolSize 1":                          one,
		"no ContextTimeoutEnabled":            clientWith(t, "127.0.0.1:1", func(o *redis.Options) { o.ContextTimeoutEnabled = false }),
	} {
		_, err := NewLock(c, "k", time.Second)
		assert.ErrorIs(t, err, ErrClientConfig, name)
		assert.Empty(t, redistest.RepeatedPrefix(err.Error()))
	}
	// A semaphore needs no second connection.
	_, err := NewSemaphore(one, "k", 1, time.Second)
	assert.NoError(t, err)
	var nilClient *redis.Client
	_, err = NewLock(nilClient, "k", time.Second)
	assert.Error(t, err)
	_, err = NewRedlock([]*redis.Client{nilClient}, "k", time.Second)
	assert.Error(t, err)
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}
