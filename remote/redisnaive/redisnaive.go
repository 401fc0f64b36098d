// Package redisnaive keeps the Redis lock and semaphore that blog posts
// still teach, as controls that show what goes wrong: SETNX then EXPIRE as
// a second command, DEL to release whoever holds the key, a token from a
// separate INCR, a permit counter read and written by separate commands.
// The harness asserts each failure (remote/redislab has the designs that
// survive the same faults). Do not use them.
//
// # How the lock fails
//
//   - A holder that crashes (or loses its connection) between SETNX and
//     EXPIRE leaves a key without expiry: the lock is held forever.
//   - Release deletes the key whatever it holds: a holder whose lease
//     expired deletes the next holder's lock, and a third party walks in.
//     Extend likewise sets the expiry of whoever holds the key.
//   - The token is taken by a separate INCR after the grant, so two holders
//     (see above) can get tokens in either order.
//   - Waiting polls with time.Sleep (every 10 ms by default), which ignores
//     ctx: a cancelled Acquire returns up to one poll interval late.
//     Lease.TTL is measured on the wall clock (a clock step moves it) with
//     no drift allowance.
//   - go-redis's retries apply every command again: SETNX retried after its
//     first attempt succeeded reports the lock held, by itself.
package redisnaive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
	"github.com/redis/go-redis/v9"
)

// NaiveLock is the lock that blog posts still teach, kept as a control to
// show what goes wrong. Do not use it.
//
//	SETNX key "locked"       -- take it if free
//	EXPIRE key ttl           -- a SECOND command: a crash in between leaves a lock that never expires
//	INCR key:fence           -- a third, for the token: not atomic with the grant
//	DEL key                  -- release: deletes whoever's lock is there
//
// What goes wrong, by design:
//   - A holder that crashes between SETNX and EXPIRE leaves a lock held
//     forever (WithAfterSetNX simulates that crash).
//   - Release and Extend act on whoever holds the key: a holder whose lease
//     expired deletes the next holder's lock.
//   - The token comes from a separate INCR: no safe fencing.
//   - Waiting polls with time.Sleep, which ignores ctx; Lease.TTL is
//     measured on the wall clock with no drift allowance; go-redis's
//     retries apply every command again.
//
// What does hold: while nothing crashes, expires or retries, SETNX admits
// one holder at a time. The zero value refuses every call
// (contend.ErrNotConstructed).
type NaiveLock struct {
	roundTrips
	c        redis.UniversalClient
	key      string
	ttl      time.Duration
	poll     time.Duration
	afterSet func() error
}

// defaultPoll is how long a waiting Acquire sleeps between attempts, unless
// WithPollInterval says otherwise.
const defaultPoll = 10 * time.Millisecond

// NaiveOption configures NewNaiveLock.
type NaiveOption func(*NaiveLock)

// WithAfterSetNX installs a test hook called after a successful SETNX and
// before EXPIRE. If it returns an error, the acquisition stops there, as if
// the process had crashed: EXPIRE is never sent, the key stays without
// expiry, and the error is returned (wrapped).
func WithAfterSetNX(f func() error) NaiveOption {
	return func(l *NaiveLock) { l.afterSet = f }
}

// WithPollInterval sets how long Acquire sleeps between attempts (default
// 10 ms).
func WithPollInterval(d time.Duration) NaiveOption {
	return func(l *NaiveLock) { l.poll = d }
}

// NewNaiveLock returns a NaiveLock on key with an expiry of ttl (whole
// seconds are not required: EXPIRE is sent as PEXPIRE). It uses key and
// key+":fence". client must have ContextTimeoutEnabled.
func NewNaiveLock(client redis.UniversalClient, key string, ttl time.Duration, opts ...NaiveOption) (*NaiveLock, error) {
	if err := checkClient("NewNaiveLock", client); err != nil {
		return nil, err
	}
	if err := checkTTL("NewNaiveLock", ttl); err != nil {
		return nil, err
	}
	l := &NaiveLock{c: client, key: key, ttl: ttl, poll: defaultPoll}
	for _, o := range opts {
		if o != nil {
			o(l)
		}
	}
	return l, nil
}

// Acquire polls TryAcquire, sleeping the poll interval with time.Sleep
// between attempts, until it succeeds, fails with an error other than
// ErrHeld, or ctx is done (checked between sleeps only).
func (l *NaiveLock) Acquire(ctx context.Context) (contend.Lease, error) {
	if l.c == nil {
		return nil, notConstructed("NaiveLock.Acquire")
	}
	for {
		s, err := l.TryAcquire(ctx)
		if !errors.Is(err, contend.ErrHeld) {
			return s, err
		}
		time.Sleep(l.poll)
		if ctx.Err() != nil {
			return nil, redisx.CtxErr("redisnaive: NaiveLock.Acquire", ctx, nil)
		}
	}
}

// TryAcquire sends SETNX, then (unless the test hook crashes it) PEXPIRE,
// then INCR for the token: three round trips, not atomic.
func (l *NaiveLock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if l.c == nil {
		return nil, notConstructed("NaiveLock.TryAcquire")
	}
	ctx = l.with(ctx)
	ok, err := l.c.SetNX(ctx, l.key, "locked", 0).Result()
	if err != nil {
		return nil, fmt.Errorf("redisnaive: NaiveLock.TryAcquire: SETNX: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("redisnaive: NaiveLock.TryAcquire: %w", contend.ErrHeld)
	}
	if l.afterSet != nil {
		if err := l.afterSet(); err != nil {
			return nil, fmt.Errorf("redisnaive: NaiveLock.TryAcquire: crashed between SETNX and EXPIRE: %w", err)
		}
	}
	at := time.Now().Round(0) // wall clock: the flaw is kept on purpose
	if err := l.c.PExpire(ctx, l.key, l.ttl).Err(); err != nil {
		return nil, fmt.Errorf("redisnaive: NaiveLock.TryAcquire: EXPIRE: %w", err)
	}
	tok, err := l.c.Incr(ctx, l.key+":fence").Uint64()
	if err != nil {
		return nil, fmt.Errorf("redisnaive: NaiveLock.TryAcquire: INCR: %w", err)
	}
	return &naiveLease{l: l, token: tok, at: at, ttl: l.ttl}, nil
}

type naiveLease struct {
	l     *NaiveLock
	token uint64
	mu    sync.Mutex
	at    time.Time // wall clock
	ttl   time.Duration
	done  bool
}

func (s *naiveLease) Token() uint64 { return s.token }

// Release sends DEL key, whoever holds it: the flaw. A second Release of
// the same lease returns ErrNotHeld without a round trip; a DEL that finds
// no key also returns ErrNotHeld.
func (s *naiveLease) Release(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return fmt.Errorf("redisnaive: NaiveLock lease Release: %w", contend.ErrNotHeld)
	}
	n, err := s.l.c.Del(s.l.with(ctx), s.l.key).Result()
	if err != nil {
		return fmt.Errorf("redisnaive: NaiveLock lease Release: %w", err)
	}
	s.done = true
	if n == 0 {
		return fmt.Errorf("redisnaive: NaiveLock lease Release: %w", contend.ErrNotHeld)
	}
	return nil
}

// Extend sends PEXPIRE key ttl, whoever holds it: the flaw.
func (s *naiveLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("NaiveLock lease Extend", ttl); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return fmt.Errorf("redisnaive: NaiveLock lease Extend: %w", contend.ErrNotHeld)
	}
	ok, err := s.l.c.PExpire(s.l.with(ctx), s.l.key, ttl).Result()
	if err != nil {
		return fmt.Errorf("redisnaive: NaiveLock lease Extend: %w", err)
	}
	if !ok {
		return fmt.Errorf("redisnaive: NaiveLock lease Extend: %w", contend.ErrNotHeld)
	}
	s.at, s.ttl = time.Now().Round(0), ttl
	return nil
}

// TTL is measured on the wall clock, without drift allowance: the flaw.
func (s *naiveLease) TTL() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, s.ttl-time.Now().Round(0).Sub(s.at)), true
}

// NaiveSemaphore is the permit counter that blog posts teach, kept as a
// control: a key holds the number of free permits, and
//
//	GET key                  -- enough free?
//	DECRBY key n             -- a SECOND command: others passed the same GET meanwhile
//	INCRBY key n             -- release
//
// What goes wrong, by design: between GET and DECRBY other clients read the
// same count, so under concurrency it admits more than Capacity holders
// (the free count goes negative). A holder that crashes never gives its
// permits back: nothing expires (Lease.TTL reports no expiry). go-redis's
// retries can apply DECRBY or INCRBY twice, leaking or minting permits.
// The token is a separate INCR: no safe fencing.
//
// What does hold: with one client at a time, it counts correctly. The zero
// value refuses every call (contend.ErrNotConstructed).
type NaiveSemaphore struct {
	roundTrips
	c   redis.UniversalClient
	key string
	n   int64
}

// NewNaiveSemaphore returns a NaiveSemaphore of n permits on key (the free
// count) and key+":fence". The free count is created with SETNX on first
// use. client must have ContextTimeoutEnabled.
func NewNaiveSemaphore(client redis.UniversalClient, key string, n int64) (*NaiveSemaphore, error) {
	if err := checkClient("NewNaiveSemaphore", client); err != nil {
		return nil, err
	}
	if err := contend.CheckSemaphoreCapacity(n, math.MaxInt64); err != nil {
		return nil, err
	}
	return &NaiveSemaphore{c: client, key: key, n: n}, nil
}

// Capacity returns the number of permits.
func (s *NaiveSemaphore) Capacity() int64 { return s.n }

// Acquire polls TryAcquire every 10 ms (time.Sleep) until it succeeds,
// fails otherwise, or ctx is done (checked between sleeps).
func (s *NaiveSemaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if s.c == nil {
		return nil, notConstructed("NaiveSemaphore.Acquire")
	}
	for {
		l, err := s.TryAcquire(ctx, n)
		if !errors.Is(err, contend.ErrHeld) {
			return l, err
		}
		time.Sleep(defaultPoll)
		if ctx.Err() != nil {
			return nil, redisx.CtxErr("redisnaive: NaiveSemaphore.Acquire", ctx, nil)
		}
	}
}

// TryAcquire reads the free count with GET and, if n are free, takes them
// with DECRBY: two round trips with a race between them, then INCR for
// the token.
func (s *NaiveSemaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if s.c == nil {
		return nil, notConstructed("NaiveSemaphore.TryAcquire")
	}
	if n < 1 || n > s.n {
		return nil, &contend.PermitError{N: n, Capacity: s.n}
	}
	ctx = s.with(ctx)
	free, err := s.c.Get(ctx, s.key).Int64()
	if errors.Is(err, redis.Nil) {
		if err = s.c.SetNX(ctx, s.key, s.n, 0).Err(); err == nil {
			free, err = s.n, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("redisnaive: NaiveSemaphore.TryAcquire: GET: %w", err)
	}
	if free < n {
		return nil, fmt.Errorf("redisnaive: NaiveSemaphore.TryAcquire: %w", contend.ErrHeld)
	}
	if err := s.c.DecrBy(ctx, s.key, n).Err(); err != nil {
		return nil, fmt.Errorf("redisnaive: NaiveSemaphore.TryAcquire: DECRBY: %w", err)
	}
	tok, err := s.c.Incr(ctx, s.key+":fence").Uint64()
	if err != nil {
		return nil, fmt.Errorf("redisnaive: NaiveSemaphore.TryAcquire: INCR: %w", err)
	}
	return &naiveSemLease{s: s, n: n, token: tok}, nil
}

type naiveSemLease struct {
	s     *NaiveSemaphore
	n     int64
	token uint64
	mu    sync.Mutex
	done  bool
}

func (l *naiveSemLease) Token() uint64 { return l.token }

// Release gives the permits back with INCRBY. A second Release returns
// ErrNotHeld without a round trip.
func (l *naiveSemLease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return fmt.Errorf("redisnaive: NaiveSemaphore lease Release: %w", contend.ErrNotHeld)
	}
	if err := l.s.c.IncrBy(l.s.with(ctx), l.s.key, l.n).Err(); err != nil {
		return fmt.Errorf("redisnaive: NaiveSemaphore lease Release: %w", err)
	}
	l.done = true
	return nil
}

// Extend does nothing but check ttl and the lease: nothing expires.
func (l *naiveSemLease) Extend(_ context.Context, ttl time.Duration) error {
	if err := checkTTL("NaiveSemaphore lease Extend", ttl); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return fmt.Errorf("redisnaive: NaiveSemaphore lease Extend: %w", contend.ErrNotHeld)
	}
	return nil
}

// TTL reports no expiry: a crashed holder's permits are never returned.
func (l *naiveSemLease) TTL() (time.Duration, bool) { return 0, false }

// checkClient checks c for op and instruments it.
func checkClient(op string, c redis.UniversalClient) error {
	if _, err := redisx.CheckClient(c); err != nil {
		return fmt.Errorf("redisnaive: %s: %w", op, err)
	}
	redisx.Instrument(c)
	return nil
}

func notConstructed(op string) error {
	return fmt.Errorf("redisnaive: %s: %w", op, contend.ErrNotConstructed)
}

func checkTTL(op string, ttl time.Duration) error {
	if err := redisx.CheckTTL(ttl); err != nil {
		return fmt.Errorf("redisnaive: %s: %w", op, err)
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
