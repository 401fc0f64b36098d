package harness

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/remote/etcdlab"
	"github.com/contend-lab/contend/remote/etcdref"

	"github.com/anishathalye/porcupine"
	"github.com/contend-lab/contend/internal/zkserver"
	"github.com/contend-lab/contend/linearize"
	"github.com/contend-lab/contend/remote/zklab"
	"github.com/contend-lab/contend/remote/zknaive"
	"github.com/contend-lab/contend/remote/zkref"

	"github.com/redis/go-redis/v9"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/contend-lab/contend/internal/redisx"
	"github.com/contend-lab/contend/remote"
	"github.com/contend-lab/contend/remote/redislab"
	"github.com/contend-lab/contend/remote/redisnaive"
	"github.com/contend-lab/contend/remote/redisref"
)

// The remote tier: the same contracts with their state in servers, which
// the harness starts itself on loopback. A backend is one remote.Backend
// (Backends); each entry below names its backend and the deployments it
// runs on, and builds itself on a started cluster. The remote stress runs,
// fault scenarios, benchmarks and the report iterate over these lists and
// never name a backend: a new one is its client packages (remote/...), its
// server package (internal/...server), its entries here and its install
// script.

// Backends returns every remote backend, in the order the report lists
// them.
func Backends() []remote.Backend {
	return []remote.Backend{redisserver.Backend, zkserver.Backend, etcdserver.Backend}
}

// BackendByName returns the backend named name.
func BackendByName(name string) (remote.Backend, bool) {
	for _, b := range Backends() {
		if b.Name == name {
			return b, true
		}
	}
	return remote.Backend{}, false
}

// RemoteLease is the TTL the stress runs give remote locks and semaphores:
// long enough that no holder outlives its lease, so an overlap is a bug and
// not an expiry. The fault scenarios use shorter ones.
const RemoteLease = 5 * time.Second

// Instance is a remote implementation built on a started cluster: Impl, and
// Close, which closes the clients it opened (not the servers).
type Instance[T any] struct {
	Impl  T
	Close func() error
}

// RoundTrips returns how many requests the implementation has sent, if it
// counts them (remote.RoundTripCounter).
func (i Instance[T]) RoundTrips() (int64, bool) {
	c, ok := any(i.Impl).(remote.RoundTripCounter)
	if !ok {
		return 0, false
	}
	return c.RoundTrips(), true
}

// RemoteImpl is what every remote entry says about itself.
type RemoteImpl struct {
	Name    string // unique within its family and backend; lower case, no trailing -digits
	Backend string // remote.Backend.Name
	// Deployments names the backend's deployments it runs on, its main one
	// (used by the fault scenarios) first.
	Deployments []string
	Guarantee   Guarantee
	Reference   bool
	Summary     string
	Flaw        string // for Broken: what goes wrong
	// Deviations names the fault scenarios (by ID, see TestRemoteFaults)
	// the design does not survive, with why. The harness asserts that each
	// still fails and that every other one is survived.
	Deviations map[string]string
	// MayFail names the scenarios the design does not promise to survive
	// but does not always fail either (a race inside the design): their
	// outcome is recorded, not asserted.
	MayFail map[string]string
}

// RemoteLockImpl is one registered server-backed Lock.
type RemoteLockImpl struct {
	RemoteImpl
	// NoFencing: the implementation hands out no fencing token (Token is
	// always 0), so the harness does not check that tokens grow.
	NoFencing bool
	// WeakTryAcquire, if set, says how the lock keeps only the weaker
	// TryAcquire of contend.Lock (ErrHeld while nobody holds it); the
	// linearizability model then allows it (linearize.WeakTryAcquire).
	WeakTryAcquire string
	// New builds the lock on key with leases of ttl, on clients of c's
	// servers that it opens itself.
	New func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error)
}

// RemoteSemaphoreImpl is one registered server-backed Semaphore.
type RemoteSemaphoreImpl struct {
	RemoteImpl
	NoFencing bool
	New       func(c remote.Cluster, key string, capacity int64, ttl time.Duration) (Instance[contend.Semaphore], error)
}

// RemoteBucketImpl is one registered server-backed Bucket. It ignores
// cfg.Clock: its time is the server's.
type RemoteBucketImpl struct {
	RemoteImpl
	New func(c remote.Cluster, key string, cfg contend.BucketConfig) (Instance[contend.Bucket], error)
}

// RemoteLocks returns every registered server-backed Lock, backend by
// backend.
func RemoteLocks() []RemoteLockImpl {
	return []RemoteLockImpl{
		{RemoteImpl: RemoteImpl{Name: "redis-naive", Backend: "redis", Deployments: []string{"single"}, Guarantee: Broken,
			Summary: "the article's design: SETNX, then EXPIRE as a second command, polling on the wall clock; DEL to release",
			Flaw:    "a crash between SETNX and EXPIRE leaves a lock that never expires; release deletes whoever holds it; no fencing token",
			Deviations: map[string]string{
				"stale-holder":       "its Release deletes whoever holds the key: the stale holder's late Release frees the next holder's lock, and a third walks in",
				"paused-servers":     "its SETNX, sent before the deadline, runs when the server resumes, and the EXPIRE that should follow is never sent: the lock is held forever",
				"killed-servers":     "its token counter dies with the server, so a restarted server hands out a token it handed out before",
				"partitioned-client": "its SETNX, held by the partition, runs at the heal after the client gave up, and no EXPIRE follows: the lock is held forever",
				"reset-reply":        "its SETNX ran but the reply was lost; it sends no EXPIRE and forgets it: the lock is held forever",
				"slow-client":        "its SETNX runs but the reply arrives after the client's read timeout; it sends no EXPIRE: the lock is held forever",
			}},
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Lock, error) {
					return redisnaive.NewNaiveLock(cl[0], key, ttl, redisnaive.WithPollInterval(time.Millisecond))
				})
			}},
		{RemoteImpl: RemoteImpl{Name: "redis", Backend: "redis", Deployments: []string{"single"}, Guarantee: Exact,
			Summary: "SET NX PX and a fencing counter in one Lua script, and a FIFO queue: release hands the lock, with a new token, to the next live waiter and wakes it; polling only as a fallback; exclusive while holders finish within the TTL"},
			WeakTryAcquire: "hand-off: TryAcquire reports ErrHeld while the lock is handed to a waiter that has not yet taken it up",
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Lock, error) {
					return redislab.NewLock(cl[0], key, ttl)
				})
			}},
		{RemoteImpl: RemoteImpl{Name: "redlock", Backend: "redis", Deployments: []string{"independent3"}, Guarantee: Exact,
			Summary: "Redlock over 3 independent servers: quorum 2, validity = TTL − elapsed − drift; token is the max of per-node counters, not a safe fence"},
			WeakTryAcquire: "split votes: contenders that each win some servers and none a quorum all report ErrHeld, while nobody holds the lock",
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Lock, error) {
					// 250 ms per server: the default (ttl/20, at most 50 ms) is
					// too short for loopback under -race with 100 contenders.
					return redislab.NewRedlock(cl, key, ttl, redislab.WithNodeTimeout(250*time.Millisecond))
				})
			}},
		{RemoteImpl: RemoteImpl{Name: "redsync", Backend: "redis", Deployments: []string{"independent3"}, Guarantee: Exact, Reference: true,
			Summary:    "github.com/go-redsync/redsync/v4 Redlock, waiting with the lab's jittered backoff (1 to 32 ms); no fencing token",
			Deviations: map[string]string{"stale-holder": "no fencing token: the resource cannot tell the stale holder's write"}},
			NoFencing:      true,
			WeakTryAcquire: "split votes: contenders that each win some servers and none a quorum all report ErrHeld, while nobody holds the lock",
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Lock, error) {
					return redisref.NewRedsyncLock(cl, key, ttl)
				})
			}},
		{RemoteImpl: RemoteImpl{Name: "redislock", Backend: "redis", Deployments: []string{"single"}, Guarantee: Exact, Reference: true,
			Summary:    "github.com/bsm/redislock: SET NX PX with token-checked release, waiting with jittered backoff (1 to 32 ms); no fencing token",
			Deviations: map[string]string{"stale-holder": "no fencing token: the resource cannot tell the stale holder's write"}},
			NoFencing: true,
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Lock, error) {
					return redisref.NewRedisLockRef(cl[0], key, ttl)
				})
			}},

		{RemoteImpl: RemoteImpl{Name: "zookeeper-naive", Backend: "zookeeper", Deployments: []string{"standalone"}, Guarantee: Broken,
			Summary: "the article's kazoo recipe: ephemeral sequential nodes, a watch on the predecessor, and the holder is whoever's watch fired",
			Flaw:    "a waiter that leaves the queue (cancelled, or its session expired) fires its successor's watch, and the successor takes the lock while the holder still holds it",
			Deviations: map[string]string{
				"waiter-cut-off":     "the waiter behind the one cut off believes its watch: two holders",
				"partitioned-client": "a create whose reply it never saw leaves a node it does not know is its own at the head of the queue, blocking everyone for as long as its session lives",
				"slow-client":        "a create whose reply comes too late leaves a node it does not know is its own, blocking the queue while its session lives",
				"reset-reply":        "a create whose reply was lost leaves a node it does not know is its own, blocking the queue while its session lives",
				"paused-servers":     "a create sent to the paused server runs at the resume after the client gave up, leaving a node nobody owns at the head of the queue",
			},
			MayFail: map[string]string{
				"killed-servers": "its create has no context: sent before the client notices the server died, it blocks until the client is closed; sent after, it fails at once",
			}},
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return closing[contend.Lock](zknaive.NewLockAt(c.Endpoints(), key, ttl))
			}},
		{RemoteImpl: RemoteImpl{Name: "zookeeper", Backend: "zookeeper", Deployments: []string{"standalone", "ensemble3"}, Guarantee: Exact,
			Summary: "ephemeral sequential nodes, the lowest holds, each waiter watches its predecessor and lists the queue again; token = the node's creation zxid; the lease is the session"},
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return closing[contend.Lock](zklab.NewLockAt(c.Endpoints(), key, ttl))
			}},
		{RemoteImpl: RemoteImpl{Name: "gozk", Backend: "zookeeper", Deployments: []string{"standalone"}, Guarantee: Exact, Reference: true,
			Summary:    "github.com/go-zookeeper/zk Lock: the same recipe, with no context, no try-lock and no fencing token",
			Deviations: map[string]string{"stale-holder": "no fencing token: the resource cannot tell the stale holder's write"}},
			NoFencing: true,
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return closing[contend.Lock](zkref.NewLockAt(c.Endpoints(), key, ttl))
			}},

		{RemoteImpl: RemoteImpl{Name: "etcd", Backend: "etcd", Deployments: []string{"single", "cluster3"}, Guarantee: Exact,
			Summary: "a queue of keys on the client's lease: the lowest create revision holds, each waiter waits for the key ahead and reads again; token = the key's create revision; fenced writes checked by etcd"},
			WeakTryAcquire: "hand-off: a waiter whose ctx has ended keeps its turn until it notices, and TryAcquire meanwhile reports ErrHeld",
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return closing[contend.Lock](etcdlab.NewLockAt(c.Endpoints(), key, ttl))
			}},
		{RemoteImpl: RemoteImpl{Name: "etcd-mutex", Backend: "etcd", Deployments: []string{"single", "cluster3"}, Guarantee: Exact, Reference: true,
			Summary: "go.etcd.io/etcd/client/v3/concurrency Mutex, a session per Acquire in flight; token = the grant's Header().Revision (strictly increasing, not the key's create revision after a wait)"},
			WeakTryAcquire: "TryLock writes its key before it looks, so a concurrent TryAcquire can report ErrHeld with no lease live or to come",
			New: func(c remote.Cluster, key string, ttl time.Duration) (Instance[contend.Lock], error) {
				return closing[contend.Lock](etcdref.NewLockAt(c.Endpoints(), key, ttl))
			}},
	}
}

// RemoteSemaphores returns every registered server-backed Semaphore.
func RemoteSemaphores() []RemoteSemaphoreImpl {
	return []RemoteSemaphoreImpl{
		{RemoteImpl: RemoteImpl{Name: "redis-naive", Backend: "redis", Deployments: []string{"single"}, Guarantee: Broken,
			Summary: "the article's permit counter: GET, then DECRBY, as separate commands",
			Flaw:    "concurrent acquirers all read enough permits and all take them: over-admits; permits never expire",
			Deviations: map[string]string{
				"stale-holder":   "permits never expire: a holder that never comes back keeps its permit forever",
				"crashed-holder": "permits never expire: a crashed holder's permit is lost for good",
			}},
			NoFencing: true,
			New: func(c remote.Cluster, key string, capacity int64, ttl time.Duration) (Instance[contend.Semaphore], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Semaphore, error) {
					return redisnaive.NewNaiveSemaphore(cl[0], key, capacity)
				})
			}},
		{RemoteImpl: RemoteImpl{Name: "redis", Backend: "redis", Deployments: []string{"single"}, Guarantee: Exact,
			Summary: "FIFO semaphore in one Lua script on the server's TIME: holders expire, release is idempotent, fencing counter"},
			New: func(c remote.Cluster, key string, capacity int64, ttl time.Duration) (Instance[contend.Semaphore], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Semaphore, error) {
					return redislab.NewSemaphore(cl[0], key, capacity, ttl)
				})
			}},

		{RemoteImpl: RemoteImpl{Name: "zookeeper", Backend: "zookeeper", Deployments: []string{"standalone", "ensemble3"}, Guarantee: Exact,
			Summary: "Curator-style: sequential nodes carrying their permits, FIFO, the first whose permits fit hold; token = the node's creation zxid; the lease is the session"},
			New: func(c remote.Cluster, key string, capacity int64, ttl time.Duration) (Instance[contend.Semaphore], error) {
				return closing[contend.Semaphore](zklab.NewSemaphoreAt(c.Endpoints(), key, capacity, ttl))
			}},

		{RemoteImpl: RemoteImpl{Name: "etcd", Backend: "etcd", Deployments: []string{"single", "cluster3"}, Guarantee: Exact,
			Summary: "a FIFO queue of keys carrying their permits, on the client's lease: a key holds while the permits ahead plus its own fit; token = the key's create revision"},
			New: func(c remote.Cluster, key string, capacity int64, ttl time.Duration) (Instance[contend.Semaphore], error) {
				return closing[contend.Semaphore](etcdlab.NewSemaphoreAt(c.Endpoints(), key, capacity, ttl))
			}},
	}
}

// RemoteBuckets returns every registered server-backed Bucket.
func RemoteBuckets() []RemoteBucketImpl {
	return []RemoteBucketImpl{
		{RemoteImpl: RemoteImpl{Name: "redis", Backend: "redis", Deployments: []string{"single"}, Guarantee: Exact,
			Summary: "GCRA in one Lua script on the server's integer clock, one round trip per decision; fails closed"},
			New: func(c remote.Cluster, key string, cfg contend.BucketConfig) (Instance[contend.Bucket], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Bucket, error) {
					return redislab.NewBucket(cl[0], key, cfg)
				})
			}},
		{RemoteImpl: RemoteImpl{Name: "redis_rate", Backend: "redis", Deployments: []string{"single"}, Guarantee: Exact, Reference: true,
			Summary: "github.com/go-redis/redis_rate/v10 (GCRA in Lua, float arithmetic)"},
			New: func(c remote.Cluster, key string, cfg contend.BucketConfig) (Instance[contend.Bucket], error) {
				return onRedis(c, func(cl []*redis.Client) (contend.Bucket, error) {
					return redisref.NewRedisRateBucket(cl[0], key, cfg)
				})
			}},
	}
}

// onRedis builds a registry instance on a Redis cluster: it opens one
// client per server, with the lab's settings, hands them to build, and
// closes them with the instance (or at once, if build fails).
func onRedis[T any](c remote.Cluster, build func(clients []*redis.Client) (T, error)) (Instance[T], error) {
	var clients []*redis.Client
	for _, ep := range c.Endpoints() {
		clients = append(clients, redisx.NewClient(ep))
	}
	closeAll := func() error {
		var errs []error
		for _, cl := range clients {
			errs = append(errs, cl.Close())
		}
		return errors.Join(errs...)
	}
	impl, err := build(clients)
	if err != nil {
		_ = closeAll()
		return Instance[T]{}, err
	}
	return Instance[T]{Impl: impl, Close: closeAll}, nil
}

// lockModel is the linearizability model of a lock that hands out fencing
// tokens or not, and keeps the exact or the weaker TryAcquire.
func lockModel(noFencing, weakTryAcquire bool) porcupine.Model {
	var rules linearize.LockRules
	if !noFencing {
		rules |= linearize.Fenced
	}
	if weakTryAcquire {
		rules |= linearize.WeakTryAcquire
	}
	return linearize.NewLock(rules)
}

// closing makes an instance of an implementation that closes itself (its
// own client and session), from its constructor's results.
func closing[T any, C interface {
	io.Closer
}](impl C, err error) (Instance[T], error) {
	if err != nil {
		return Instance[T]{}, err
	}
	t, ok := any(impl).(T)
	if !ok {
		_ = impl.Close()
		return Instance[T]{}, fmt.Errorf("harness: %T is not a %T", impl, (*T)(nil))
	}
	return Instance[T]{Impl: t, Close: impl.Close}, nil
}
