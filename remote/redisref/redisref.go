// Package redisref adapts the Redis libraries users would otherwise pick to
// the lab's contracts, so that the same harness holds them to the same
// checks as the lab's designs (remote/redislab): github.com/go-redsync/redsync
// (Redlock), github.com/bsm/redislock (a single-server lock) and
// github.com/go-redis/redis_rate (GCRA). Each type states its deviations
// from the contracts, and a test pins each one.
package redisref

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/bsm/redislock"
	"github.com/contend-lab/contend"
	"github.com/go-redis/redis_rate/v10"
	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// ErrFixedTTL is returned (wrapped) by a RedsyncLock lease's Extend for a
// ttl other than the lock's own: redsync extends by the mutex's expiry only.
var ErrFixedTTL = errors.New("redsync extends by the lock's own ttl only")

// backoff is the waiting policy the references get: the lab's Redlock's,
// 1 ms doubling to 32 ms with jitter, so that they wait as the lab's
// polling lock does. (The lab's single-server Lock does not poll: it
// queues and is woken; no reference can be given that.)
func backoff() *redisx.Backoff {
	return &redisx.Backoff{D: time.Millisecond, Max: 32 * time.Millisecond}
}

// RedsyncLock is github.com/go-redsync/redsync/v4 (Redlock over N servers)
// adapted to contend.Lock: one redsync.Mutex per acquisition, with its
// defaults (drift factor 1%, per-node timeout 5% of ttl) but unlimited
// tries, so that Acquire waits until ctx is done, and the lab's Redlock's
// waiting policy between them (1 ms doubling to 32 ms with jitter, where
// redsync's default is 50 to 250 ms).
//
// Deviations from contend.Lock, pinned by tests:
//   - Token is always 0: redsync has no fencing token. Not safe without a
//     fence of your own.
//   - Extend accepts only the lock's own ttl (ErrFixedTTL otherwise).
//   - Acquire retries every error until ctx ends, a wrong password too
//     (redsync does not tell them apart).
//
// Guarantees and limits are otherwise Redlock's (see redislab.Redlock).
// go-redis's retries are not guarded against: a retried acquire of
// redsync's script finds its own value and fails, leaving a key that
// expires after ttl. The zero value refuses every call
// (contend.ErrNotConstructed).
type RedsyncLock struct {
	roundTrips
	rs  *redsync.Redsync
	key string
	ttl time.Duration
}

// NewRedsyncLock returns a RedsyncLock on key over clients, with leases of
// ttl. Clients must have ContextTimeoutEnabled.
func NewRedsyncLock(clients []*redis.Client, key string, ttl time.Duration) (*RedsyncLock, error) {
	if len(clients) == 0 {
		return nil, errors.New("redisref: NewRedsyncLock: no servers")
	}
	if err := checkTTL("NewRedsyncLock", ttl); err != nil {
		return nil, err
	}
	pools := make([]redsyncredis.Pool, 0, len(clients))
	for i, c := range clients {
		if err := checkClient(fmt.Sprintf("NewRedsyncLock (server %d)", i), c); err != nil {
			return nil, err
		}
		pools = append(pools, redsyncgoredis.NewPool(c))
	}
	return &RedsyncLock{key: key, ttl: ttl, rs: redsync.New(pools...)}, nil
}

// redsyncHeld reports whether a failed redsync operation's error says that
// other holders have the key (as opposed to servers not answering).
func redsyncHeld(err error) bool {
	var taken *redsync.ErrTaken
	var nodeTaken *redsync.ErrNodeTaken
	var rerr *redsync.RedisError
	return errors.As(err, &taken) || errors.As(err, &nodeTaken) ||
		errors.Is(err, redsync.ErrLockAlreadyExpired) || !errors.As(err, &rerr)
}

func (l *RedsyncLock) mutex(tries int) *redsync.Mutex {
	return l.rs.NewMutex(l.key,
		redsync.WithExpiry(l.ttl),
		redsync.WithTries(tries),
		redsync.WithRetryDelayFunc(func(try int) time.Duration {
			return redisx.Jitter(min(time.Millisecond<<min(try, 5), 32*time.Millisecond))
		}),
	)
}

// Acquire tries until it holds the lock or ctx is done.
func (l *RedsyncLock) Acquire(ctx context.Context) (contend.Lease, error) {
	if l.rs == nil {
		return nil, notConstructed("RedsyncLock.Acquire")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisref: RedsyncLock.Acquire: %w", err)
	}
	m := l.mutex(math.MaxInt32)
	if err := m.LockContext(l.with(ctx)); err != nil {
		if ctx.Err() != nil {
			return nil, redisx.CtxErr("redisref: RedsyncLock.Acquire", ctx, err)
		}
		return nil, fmt.Errorf("redisref: RedsyncLock.Acquire: %w", err)
	}
	return &redsyncLease{l: l, m: m}, nil
}

// TryAcquire makes one redsync attempt; contend.ErrHeld (wrapped) if it
// did not get a quorum.
func (l *RedsyncLock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if l.rs == nil {
		return nil, notConstructed("RedsyncLock.TryAcquire")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisref: RedsyncLock.TryAcquire: %w", err)
	}
	m := l.mutex(1)
	if err := m.TryLockContext(l.with(ctx)); err != nil {
		if redsyncHeld(err) {
			return nil, fmt.Errorf("redisref: RedsyncLock.TryAcquire: %w (%v)", contend.ErrHeld, err)
		}
		return nil, fmt.Errorf("redisref: RedsyncLock.TryAcquire: %w", err)
	}
	return &redsyncLease{l: l, m: m}, nil
}

type redsyncLease struct {
	l    *RedsyncLock
	m    *redsync.Mutex
	done redisx.DoneFlag
}

// Token is 0: redsync has no fencing token.
func (s *redsyncLease) Token() uint64 { return 0 }

func (s *redsyncLease) Release(ctx context.Context) error {
	return s.done.Release("redisref: RedsyncLock lease Release", func() (bool, error) {
		ok, err := s.m.UnlockContext(s.l.with(ctx))
		if ok || redsyncHeld(err) {
			return ok, nil // not ok: expired, or taken over
		}
		return false, err
	})
}

func (s *redsyncLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("RedsyncLock lease Extend", ttl); err != nil {
		return err
	}
	if ttl != s.l.ttl {
		return fmt.Errorf("redisref: RedsyncLock lease Extend(%v): %w (%v)", ttl, ErrFixedTTL, s.l.ttl)
	}
	if s.done.Released() {
		return fmt.Errorf("redisref: RedsyncLock lease Extend: %w", contend.ErrNotHeld)
	}
	ok, err := s.m.ExtendContext(s.l.with(ctx))
	if !ok {
		return fmt.Errorf("redisref: RedsyncLock lease Extend: %w (%v)", contend.ErrNotHeld, err)
	}
	return nil
}

// TTL is redsync's own validity (Until): ttl less elapsed less 1% drift,
// from the start of the successful attempt.
func (s *redsyncLease) TTL() (time.Duration, bool) {
	return max(0, time.Until(s.m.Until())), true
}

// RedisLockRef is github.com/bsm/redislock (SET NX PX with a random token,
// compare-and-delete, compare-and-PEXPIRE) adapted to contend.Lock.
// Acquire polls with the lab's Redlock's waiting policy (1 ms doubling to
// 32 ms with jitter; WithRetryStrategy sets another, e.g. redislock's
// documented ExponentialBackoff(16 ms, ...)) until ctx is done; TryAcquire
// makes one attempt. Errors other than "held" end both at once, as
// redislock does.
//
// Deviations from contend.Lock, pinned by tests:
//   - Token is always 0: redislock has no fencing token. Not safe without
//     a fence of your own.
//   - Acquire with a ctx without deadline gives up after ttl (redislock
//     bounds its retries so) and returns ErrNotObtained.
//
// TTL is measured locally, as for redislab.Lock (redislock's own TTL is a
// round trip). The zero value refuses every call
// (contend.ErrNotConstructed).
type RedisLockRef struct {
	roundTrips
	c     *redislock.Client
	key   string
	ttl   time.Duration
	retry func() redislock.RetryStrategy
}

// RedisLockOption configures NewRedisLockRef.
type RedisLockOption func(*RedisLockRef)

// WithRetryStrategy sets the waiting policy of Acquire: newStrategy is
// called once per Acquire (redislock's strategies keep state).
func WithRetryStrategy(newStrategy func() redislock.RetryStrategy) RedisLockOption {
	return func(l *RedisLockRef) { l.retry = newStrategy }
}

// labBackoff is the lab's Redlock's waiting policy as a redislock
// RetryStrategy.
type labBackoff struct{ b *redisx.Backoff }

func (s labBackoff) NextBackoff() time.Duration { return s.b.Next() }

// NewRedisLockRef returns a RedisLockRef on key with leases of ttl, on the
// caller's client, which must have ContextTimeoutEnabled.
func NewRedisLockRef(client redis.UniversalClient, key string, ttl time.Duration, opts ...RedisLockOption) (*RedisLockRef, error) {
	if err := checkClient("NewRedisLockRef", client); err != nil {
		return nil, err
	}
	if err := checkTTL("NewRedisLockRef", ttl); err != nil {
		return nil, err
	}
	l := &RedisLockRef{c: redislock.New(client), key: key, ttl: ttl,
		retry: func() redislock.RetryStrategy { return labBackoff{backoff()} }}
	for _, o := range opts {
		if o != nil {
			o(l)
		}
	}
	if l.retry == nil {
		return nil, errors.New("redisref: NewRedisLockRef: nil retry strategy")
	}
	return l, nil
}

func (l *RedisLockRef) obtain(ctx context.Context, retry redislock.RetryStrategy, op string) (contend.Lease, error) {
	if l.c == nil {
		return nil, notConstructed("RedisLockRef." + op)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisref: RedisLockRef.%s: %w", op, err)
	}
	start := time.Now()
	lk, err := l.c.Obtain(l.with(ctx), l.key, l.ttl, &redislock.Options{RetryStrategy: retry})
	switch {
	case err == nil:
		s := &redisLockRefLease{l: l, lk: lk}
		s.v.Set(start, l.ttl)
		return s, nil
	case errors.Is(err, redislock.ErrNotObtained):
		return nil, fmt.Errorf("redisref: RedisLockRef.%s: %w (%v)", op, contend.ErrHeld, err)
	}
	return nil, fmt.Errorf("redisref: RedisLockRef.%s: %w", op, err)
}

// Acquire retries until it holds the lock or ctx is done.
func (l *RedisLockRef) Acquire(ctx context.Context) (contend.Lease, error) {
	if l.retry == nil {
		return nil, notConstructed("RedisLockRef.Acquire")
	}
	return l.obtain(ctx, l.retry(), "Acquire")
}

// TryAcquire makes one attempt.
func (l *RedisLockRef) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return l.obtain(ctx, redislock.NoRetry(), "TryAcquire")
}

type redisLockRefLease struct {
	l    *RedisLockRef
	lk   *redislock.Lock
	v    redisx.Validity
	done redisx.DoneFlag
}

// Token is 0: redislock has no fencing token.
func (s *redisLockRefLease) Token() uint64 { return 0 }

func (s *redisLockRefLease) Release(ctx context.Context) error {
	return s.done.Release("redisref: RedisLockRef lease Release", func() (bool, error) {
		err := s.lk.Release(s.l.with(ctx))
		if errors.Is(err, redislock.ErrLockNotHeld) {
			return false, nil
		}
		return err == nil, err
	})
}

func (s *redisLockRefLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("RedisLockRef lease Extend", ttl); err != nil {
		return err
	}
	if s.done.Released() {
		return fmt.Errorf("redisref: RedisLockRef lease Extend: %w", contend.ErrNotHeld)
	}
	start := time.Now()
	err := s.lk.Refresh(s.l.with(ctx), ttl, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return fmt.Errorf("redisref: RedisLockRef lease Extend: %w", contend.ErrNotHeld)
	}
	if err != nil {
		return fmt.Errorf("redisref: RedisLockRef lease Extend: %w", err)
	}
	s.v.Set(start, ttl)
	return nil
}

func (s *redisLockRefLease) TTL() (time.Duration, bool) { return s.v.Remaining(), true }

// RedisRateBucket is github.com/go-redis/redis_rate/v10 (GCRA in Lua, in
// float64 seconds) adapted to contend.Bucket: Limit{Rate, Burst: Capacity,
// Period: 1 s}. The rate must be a whole number of tokens per second
// (redis_rate's Limit is integer), otherwise NewRedisRateBucket returns a
// *contend.ConfigError.
//
// Deviations, pinned by tests: its arithmetic is float64 seconds on the
// server's clock, and its script is retried by go-redis, so a retried
// decision can take tokens twice (under-grant). Whether it ever grants
// more than Capacity + Rate × elapsed is measured by TestReferenceBucketBound.
// The zero value refuses every request (TryTake false, LastError wraps
// contend.ErrNotConstructed).
type RedisRateBucket struct {
	roundTrips
	l     *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
	fc    redisx.FailClosed
}

// NewRedisRateBucket returns a RedisRateBucket on key (redis_rate prefixes
// it with "rate:"), on the caller's client, which must have
// ContextTimeoutEnabled.
func NewRedisRateBucket(client redis.UniversalClient, key string, cfg contend.BucketConfig) (*RedisRateBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rate != math.Trunc(cfg.Rate) || cfg.Rate > math.MaxInt32 || cfg.Capacity > math.MaxInt32 {
		return nil, &contend.ConfigError{Field: "Rate", Value: cfg.Rate,
			Reason: "redis_rate needs a whole number of tokens per second, and Rate and Capacity below 2^31"}
	}
	if err := checkClient("NewRedisRateBucket", client); err != nil {
		return nil, err
	}
	return &RedisRateBucket{
		l: redis_rate.NewLimiter(client), key: key,
		limit: redis_rate.Limit{Rate: int(cfg.Rate), Burst: int(cfg.Capacity), Period: time.Second},
	}, nil
}

// TryTakeContext asks redis_rate's AllowN for n tokens.
func (b *RedisRateBucket) TryTakeContext(ctx context.Context, n int64) (bool, error) {
	if b.l == nil {
		return false, notConstructed("RedisRateBucket.TryTake")
	}
	if n <= 0 || n > int64(b.limit.Burst) {
		return false, nil
	}
	res, err := b.l.AllowN(b.with(ctx), b.key, b.limit, int(n))
	if err != nil {
		return false, fmt.Errorf("redisref: RedisRateBucket.TryTake: %w", err)
	}
	return res.Allowed > 0, nil
}

// TryTake is TryTakeContext bounded by redislab.DefaultTakeTimeout; false
// on error (fail closed), recorded for LastError.
func (b *RedisRateBucket) TryTake(n int64) bool { return b.fc.Take(b, redisx.DefaultTakeTimeout, n) }

// LastError returns the error of the last TryTake that failed, or nil if
// none has.
func (b *RedisRateBucket) LastError() error { return b.fc.LastError() }

// checkClient checks c for op and instruments it.
func checkClient(op string, c redis.UniversalClient) error {
	if _, err := redisx.CheckClient(c); err != nil {
		return fmt.Errorf("redisref: %s: %w", op, err)
	}
	redisx.Instrument(c)
	return nil
}

func notConstructed(op string) error {
	return fmt.Errorf("redisref: %s: %w", op, contend.ErrNotConstructed)
}

func checkTTL(op string, ttl time.Duration) error {
	if err := redisx.CheckTTL(ttl); err != nil {
		return fmt.Errorf("redisref: %s: %w", op, err)
	}
	return nil
}

// roundTrips counts the commands one implementation sends; embedding it
// gives the implementation its RoundTrips method.
type roundTrips struct{ rt redisx.Counter }

// RoundTrips returns how many commands (round trips to Redis) the
// implementation has sent so far, failed ones included.
func (r *roundTrips) RoundTrips() int64 { return r.rt.RoundTrips() }

func (r *roundTrips) with(ctx context.Context) context.Context { return r.rt.With(ctx) }
