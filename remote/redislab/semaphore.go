package redislab

import (
	"context"
	"fmt"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
	"github.com/redis/go-redis/v9"
)

// Keys of a Semaphore on key K:
//
//	K:holders  ZSET  holder id -> expiry (server µs)
//	K:permits  HASH  holder id -> "<n>:<token>"
//	K:meta     HASH  used (permits held), ticket (last queue ticket)
//	K:queue    ZSET  waiting id -> ticket (FIFO order)
//	K:qexp     ZSET  waiting id -> when the waiter counts as gone (server µs)
//	K:fence    STRING fencing counter
//	K:abandoned:<id>  tombstone of an abandoned request

// semPrelude expires holders whose time is up and waiters that stopped
// polling, and defines now. KEYS 1 holders, 2 permits, 3 meta, 4 queue,
// 5 qexp.
const semPrelude = nextFenceLua + `
local now = servertime()
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  local freed = 0
  for _, h in ipairs(gone) do
    local v = redis.call('HGET', KEYS[2], h)
    if v then
      freed = freed + tonumber(string.match(v, '^(%d+):'))
      redis.call('HDEL', KEYS[2], h)
    end
    redis.call('ZREM', KEYS[1], h)
  end
  redis.call('HINCRBY', KEYS[3], 'used', -freed)
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
for _, w in ipairs(stale) do
  redis.call('ZREM', KEYS[4], w)
  redis.call('ZREM', KEYS[5], w)
end
`

// semAcquireScript: KEYS 1-5 as semPrelude, 6 fence, 7 tombstone.
// ARGV 1 id, 2 n, 3 capacity, 4 ttl µs, 5 wait ("1": join/keep the FIFO
// queue; "0": try, never queue), 6 waiter staleness µs.
// Returns {1, token} granted (now or by an earlier run of this request),
// {0, 0} not now, {-1, 0} abandoned.
var semAcquireScript = newScript(semPrelude + `
if redis.call('EXISTS', KEYS[7]) == 1 then return {-1, 0} end
local mine = redis.call('HGET', KEYS[2], ARGV[1])
if mine then
  return {1, tonumber(string.match(mine, ':(%d+)$'))}
end
local n = tonumber(ARGV[2])
if ARGV[5] == '1' then
  if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then
    redis.call('ZADD', KEYS[4], redis.call('HINCRBY', KEYS[3], 'ticket', 1), ARGV[1])
  end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[6]), ARGV[1])
  local head = redis.call('ZRANGE', KEYS[4], 0, 0)
  if head[1] ~= ARGV[1] then return {0, 0} end
elseif redis.call('ZCARD', KEYS[4]) > 0 then
  return {0, 0}
end
local used = tonumber(redis.call('HGET', KEYS[3], 'used') or '0')
if used + n > tonumber(ARGV[3]) then return {0, 0} end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
local f = fence(KEYS[6], now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d:%d', n, f))
redis.call('HINCRBY', KEYS[3], 'used', n)
return {1, f}
`)

// semReleaseScript: KEYS 1-5 as semPrelude; ARGV id. Returns 1 if id held
// permits (now freed), 0 if not (expired and freed by the prelude,
// released already, never granted). Only id's own permits are freed.
var semReleaseScript = newScript(semPrelude + `
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'used', -tonumber(string.match(v, '^(%d+):')))
return 1
`)

// semExtendScript: KEYS 1-5 as semPrelude; ARGV id, ttl µs. Returns 1 if
// id still held its permits (expiry moved), 0 otherwise.
var semExtendScript = newScript(semPrelude + `
if not redis.call('HGET', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// semHeldScript: KEYS 1-5 as semPrelude. Returns the permits held.
var semHeldScript = newScript(semPrelude + `
return tonumber(redis.call('HGET', KEYS[3], 'used') or '0')
`)

// semAbandonScript: KEYS 1-5 as semPrelude, 6 tombstone; ARGV id,
// retention ms. Tombstones id, leaves the queue, frees id's permits.
var semAbandonScript = newScript(semPrelude + `
redis.call('SET', KEYS[6], '1', 'PX', ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'used', -tonumber(string.match(v, '^(%d+):')))
return 1
`)

// Semaphore is a contend.Semaphore of n permits on one Redis server, FIFO
// among waiters, with expiring holders: every operation is one Lua script
// on the server's clock (TIME), so an uncontended Acquire or Release costs
// one round trip; waiters poll (1 ms doubling to 16 ms) rather than being
// woken, so permits may sit free for up to a poll interval.
//
// Never more than n permits held at once as the server sees it, while it
// keeps its data: admission is decided in one script against the live sum.
// Release frees only its own lease's permits; a crashed holder's come back
// after ttl; fencing tokens strictly increase; retries and abandoned
// requests neither leak nor duplicate permits (see the package doc). A
// waiter takes a ticket on its first attempt and is admitted only at the
// head of the queue, when its n permits are free (a large request blocks
// smaller ones behind it, as in x/sync/semaphore); TryAcquire never
// overtakes a waiter. A waiter that stops polling for 1 s (crashed, stalled,
// or the server stalled) loses its place. Not guaranteed: exclusion of the
// work past the TTL (fence it), or the TTL when the server's clock steps
// (TIME is its wall clock).
//
// Every Semaphore on one key must use the same n and ttl. The zero value
// refuses every call (contend.ErrNotConstructed): use NewSemaphore.
type Semaphore struct {
	roundTrips
	cleaner
	c    redis.UniversalClient
	keys [5]string // holders, permits, meta, queue, qexp
	base string
	n    int64
	ttl  time.Duration
}

// maxPermits is the largest capacity the scripts' arithmetic (Lua doubles)
// holds exactly.
const maxPermits = 1 << 53

// NewSemaphore returns a Semaphore of n permits on key, with leases of ttl
// (at least 1 ms), on the caller's client (see the package doc). n < 1 is a
// *contend.ConfigError.
func NewSemaphore(client redis.UniversalClient, key string, n int64, ttl time.Duration) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(n, maxPermits); err != nil {
		return nil, err
	}
	if _, err := checkClient("NewSemaphore", "Semaphore", client, key); err != nil {
		return nil, err
	}
	if err := checkTTL("NewSemaphore", ttl); err != nil {
		return nil, err
	}
	s := &Semaphore{c: client, base: key, n: n, ttl: ttl,
		keys: [5]string{key + ":holders", key + ":permits", key + ":meta", key + ":queue", key + ":qexp"}}
	s.window = retention(ttl)
	return s, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return s.n }

// Held returns the number of permits held now, as the server counts them
// (expired holders removed first): for tests and monitoring.
func (s *Semaphore) Held(ctx context.Context) (int64, error) {
	if s.c == nil {
		return 0, notConstructed("Semaphore.Held")
	}
	v, err := semHeldScript.run(s.with(ctx), s.c, false, s.keys[:]).Int64()
	if err != nil {
		return 0, fmt.Errorf("redislab: Semaphore.Held: %w", err)
	}
	return v, nil
}

func (s *Semaphore) acquireOnce(ctx context.Context, id string, n int64, wait bool) (uint64, bool, error) {
	w := "0"
	if wait {
		w = "1"
	}
	keys := append(s.keys[:], s.base+":fence", s.base+":abandoned:"+id)
	// A waiting Acquire retries in its own loop (see lockNode.acquire).
	vals, err := semAcquireScript.run(ctx, s.c, wait, keys,
		id, n, s.n, s.ttl.Microseconds(), w, waiterStale.Microseconds()).Int64Slice()
	if err != nil {
		return 0, false, err
	}
	if len(vals) != 2 {
		return 0, false, fmt.Errorf("acquire script returned %v", vals)
	}
	switch vals[0] {
	case 1:
		return uint64(vals[1]), true, nil
	case -1:
		return 0, false, errAbandoned
	}
	return 0, false, nil
}

func (s *Semaphore) abandonID(id string) {
	s.abandon(func(ctx context.Context) error {
		keys := append(s.keys[:], s.base+":abandoned:"+id)
		return semAbandonScript.run(s.with(ctx), s.c, false, keys, id, retention(s.ttl).Milliseconds()).Err()
	})
}

// Acquire joins the FIFO queue and polls (1 ms doubling to 16 ms, with
// jitter) until it is at the head and n permits are free, or until ctx is
// done; then it returns ctx.Err() (wrapped, with what it last ran into) and
// leaves the queue in the background (see Settle), holding nothing. n
// outside [1, Capacity] is a *contend.PermitError at once. Errors that may
// clear are retried; others are returned at once (see the package doc).
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if s.c == nil {
		return nil, notConstructed("Semaphore.Acquire")
	}
	if n < 1 || n > s.n {
		return nil, &contend.PermitError{N: n, Capacity: s.n}
	}
	ctx = s.with(ctx)
	id := newID()
	b := redisx.Backoff{D: time.Millisecond, Max: 16 * time.Millisecond}
	var at redisx.Attempts
	var since time.Time // start of the first attempt whose outcome is unknown
	sent := false
	for ctx.Err() == nil {
		start := time.Now()
		sent = true
		tok, ok, err := s.acquireOnce(ctx, id, n, true)
		switch {
		case ok:
			// The grant may be an earlier attempt's, run late.
			return s.lease(id, n, tok, earliest(since, start)), nil
		case err == nil:
			at.Held()
		case !redisx.Transient(err):
			s.abandonID(id) // leave the queue
			return nil, fmt.Errorf("redislab: Semaphore.Acquire: %w", err)
		default:
			at.Failed(ctx, err)
			if !redisx.Definitive(err) && since.IsZero() {
				since = start
			}
		}
		if redisx.SleepCtx(ctx, b.Next()) != nil {
			break
		}
	}
	if sent {
		s.abandonID(id) // leave the queue; undo a grant we did not hear of
	}
	return nil, at.Err("redislab: Semaphore.Acquire", ctx)
}

// TryAcquire takes n permits if they are free and nobody is queued, or
// returns contend.ErrHeld (wrapped). n outside [1, Capacity] is a
// *contend.PermitError. After an error whose outcome is unknown, the
// request is abandoned in the background.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if s.c == nil {
		return nil, notConstructed("Semaphore.TryAcquire")
	}
	if n < 1 || n > s.n {
		return nil, &contend.PermitError{N: n, Capacity: s.n}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redislab: Semaphore.TryAcquire: %w", err)
	}
	ctx = s.with(ctx)
	id := newID()
	start := time.Now()
	tok, ok, err := s.acquireOnce(ctx, id, n, false)
	switch {
	case ok:
		return s.lease(id, n, tok, start), nil
	case err == nil:
		return nil, fmt.Errorf("redislab: Semaphore.TryAcquire: %w", contend.ErrHeld)
	}
	if !redisx.Definitive(err) {
		s.abandonID(id)
	}
	return nil, fmt.Errorf("redislab: Semaphore.TryAcquire: %w", err)
}

func (s *Semaphore) lease(id string, n int64, tok uint64, start time.Time) *semLease {
	l := &semLease{s: s, id: id, n: n, token: tok}
	l.v.Set(start, s.ttl)
	return l
}

// semLease is a lease of n permits of a Semaphore.
type semLease struct {
	s     *Semaphore
	id    string
	n     int64
	token uint64
	v     redisx.Validity
	done  redisx.DoneFlag
}

func (l *semLease) Token() uint64 { return l.token }

// Release frees this lease's permits if the server still holds them, or
// returns ErrNotHeld (wrapped) and frees nothing. On a network error the
// lease is left as it was and Release may be called again (idempotent: a
// repeat after a lost reply reports ErrNotHeld).
func (l *semLease) Release(ctx context.Context) error {
	return l.done.Release("redislab: Semaphore lease Release", func() (bool, error) {
		v, err := semReleaseScript.run(l.s.with(ctx), l.s.c, false, l.s.keys[:], l.id).Int64()
		return v == 1, err
	})
}

// Extend moves the lease's expiry to ttl from now (server time) if it is
// still held, and restarts the local validity from the instant before the
// request.
func (l *semLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("Semaphore lease Extend", ttl); err != nil {
		return err
	}
	if l.done.Released() {
		return fmt.Errorf("redislab: Semaphore lease Extend: %w", contend.ErrNotHeld)
	}
	start := time.Now()
	v, err := semExtendScript.run(l.s.with(ctx), l.s.c, false, l.s.keys[:], l.id, ttl.Microseconds()).Int64()
	if err != nil {
		return fmt.Errorf("redislab: Semaphore lease Extend: %w", err)
	}
	if v != 1 {
		return fmt.Errorf("redislab: Semaphore lease Extend: %w", contend.ErrNotHeld)
	}
	l.v.Set(start, ttl)
	return nil
}

// TTL returns the remaining validity by the local monotonic clock, less the
// drift allowance ttl×1% + 2 ms, as for Lock.
func (l *semLease) TTL() (time.Duration, bool) { return l.v.Remaining(), true }
