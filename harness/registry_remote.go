package harness

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/remote/redislab"
	"github.com/contend-lab/contend/remote/redisnaive"
	"github.com/contend-lab/contend/remote/redisref"
)

// The remote tier: the same contracts with their state in servers, which
// the harness starts itself on loopback (internal/redisserver). Each entry
// says how many servers it needs and builds itself on clients of them and a
// key; the caller owns the clients. A new backend (etcd, ZooKeeper) is one
// package plus entries here.

// RemoteLease is the TTL the stress runs give remote locks and semaphores:
// long enough that no holder outlives its lease, so an overlap is a bug and
// not an expiry. The fault scenarios use shorter ones.
const RemoteLease = 5 * time.Second

// RemoteLockImpl is one registered server-backed Lock.
type RemoteLockImpl struct {
	Name      string
	Servers   int // independent servers it needs
	Guarantee Guarantee
	Reference bool
	// NoFencing: the library hands out no fencing token (Token is always
	// 0), so the harness does not check that tokens grow.
	NoFencing bool
	Summary   string
	Flaw      string // for Broken: what goes wrong
	New       func(clients []*redis.Client, key string, ttl time.Duration) (contend.Lock, error)
}

// RemoteSemaphoreImpl is one registered server-backed Semaphore.
type RemoteSemaphoreImpl struct {
	Name      string
	Servers   int
	Guarantee Guarantee
	Reference bool
	Summary   string
	Flaw      string
	New       func(clients []*redis.Client, key string, capacity int64, ttl time.Duration) (contend.Semaphore, error)
}

// RemoteBucketImpl is one registered server-backed Bucket. It ignores
// cfg.Clock: its time is the server's.
type RemoteBucketImpl struct {
	Name      string
	Servers   int
	Guarantee Guarantee
	Reference bool
	Summary   string
	Flaw      string
	New       func(clients []*redis.Client, key string, cfg contend.BucketConfig) (contend.Bucket, error)
}

// RemoteLocks returns every registered server-backed Lock.
func RemoteLocks() []RemoteLockImpl {
	return []RemoteLockImpl{
		{Name: "redis-naive", Servers: 1, Guarantee: Broken,
			Summary: "the article's design: SETNX, then EXPIRE as a second command, polling on the wall clock; DEL to release",
			Flaw:    "a crash between SETNX and EXPIRE leaves a lock that never expires; release deletes whoever holds it; no fencing token",
			New: func(c []*redis.Client, key string, ttl time.Duration) (contend.Lock, error) {
				return redisnaive.NewNaiveLock(c[0], key, ttl, redisnaive.WithPollInterval(time.Millisecond))
			}},
		{Name: "redis", Servers: 1, Guarantee: Exact,
			Summary: "SET NX PX and a fencing counter in one Lua script; compare-and-delete release; exclusive while holders finish within the TTL",
			New: func(c []*redis.Client, key string, ttl time.Duration) (contend.Lock, error) {
				return redislab.NewLock(c[0], key, ttl)
			}},
		{Name: "redlock", Servers: 3, Guarantee: Exact,
			Summary: "Redlock over 3 independent servers: quorum 2, validity = TTL − elapsed − drift; token is the max of per-node counters, not a safe fence",
			New: func(c []*redis.Client, key string, ttl time.Duration) (contend.Lock, error) {
				// 250 ms per server: the default (ttl/20, at most 50 ms) is
				// too short for loopback under -race with 100 contenders.
				return redislab.NewRedlock(c, key, ttl, redislab.WithNodeTimeout(250*time.Millisecond))
			}},
		{Name: "redsync", Servers: 3, Guarantee: Exact, Reference: true, NoFencing: true,
			Summary: "github.com/go-redsync/redsync/v4 Redlock; no fencing token",
			New: func(c []*redis.Client, key string, ttl time.Duration) (contend.Lock, error) {
				return redisref.NewRedsyncLock(c, key, ttl)
			}},
		{Name: "redislock", Servers: 1, Guarantee: Exact, Reference: true, NoFencing: true,
			Summary: "github.com/bsm/redislock: SET NX PX with token-checked release; no fencing token",
			New: func(c []*redis.Client, key string, ttl time.Duration) (contend.Lock, error) {
				return redisref.NewRedisLockRef(c[0], key, ttl)
			}},
	}
}

// RemoteSemaphores returns every registered server-backed Semaphore.
func RemoteSemaphores() []RemoteSemaphoreImpl {
	return []RemoteSemaphoreImpl{
		{Name: "redis-naive", Servers: 1, Guarantee: Broken,
			Summary: "the article's permit counter: GET, then DECRBY, as separate commands",
			Flaw:    "concurrent acquirers all read enough permits and all take them: over-admits",
			New: func(c []*redis.Client, key string, capacity int64, ttl time.Duration) (contend.Semaphore, error) {
				return redisnaive.NewNaiveSemaphore(c[0], key, capacity)
			}},
		{Name: "redis", Servers: 1, Guarantee: Exact,
			Summary: "FIFO semaphore in one Lua script on the server's TIME: holders expire, release is idempotent, fencing counter",
			New: func(c []*redis.Client, key string, capacity int64, ttl time.Duration) (contend.Semaphore, error) {
				return redislab.NewSemaphore(c[0], key, capacity, ttl)
			}},
	}
}

// RemoteBuckets returns every registered server-backed Bucket.
func RemoteBuckets() []RemoteBucketImpl {
	return []RemoteBucketImpl{
		{Name: "redis", Servers: 1, Guarantee: Exact,
			Summary: "GCRA in one Lua script on the server's integer clock, one round trip per decision; fails closed",
			New: func(c []*redis.Client, key string, cfg contend.BucketConfig) (contend.Bucket, error) {
				return redislab.NewBucket(c[0], key, cfg)
			}},
		{Name: "redis_rate", Servers: 1, Guarantee: Exact, Reference: true,
			Summary: "github.com/go-redis/redis_rate/v10 (GCRA in Lua, float arithmetic)",
			New: func(c []*redis.Client, key string, cfg contend.BucketConfig) (contend.Bucket, error) {
				return redisref.NewRedisRateBucket(c[0], key, cfg)
			}},
	}
}
