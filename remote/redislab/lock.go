package redislab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
	"github.com/redis/go-redis/v9"
)

// Lua for Lock (and, per node, Redlock). The lock key holds
// "<holder id>:<fencing token>".

// lockAcquireScript: KEYS lock, fence, tombstone; ARGV id, ttl ms.
// Returns the fencing token (> 0) if id holds the lock now (granted by this
// call, or by an earlier run of the same request), 0 if another holder
// has it, -1 if the request was abandoned (tombstone).
var lockAcquireScript = newScript(nextFenceLua + `
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local who, f = string.match(cur, '^(.*):(%d+)$')
  if who == ARGV[1] then return tonumber(f) end
  return 0
end
local f = fence(KEYS[2], servertime())
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. string.format('%d', f), 'PX', ARGV[2])
return f
`)

// lockReleaseScript: compare-and-delete. KEYS lock; ARGV "<id>:<token>".
var lockReleaseScript = newScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// lockExtendScript: compare-and-PEXPIRE. KEYS lock; ARGV "<id>:<token>", ttl ms.
var lockExtendScript = newScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// lockAbandonScript: tombstone the id, and delete the lock if id holds it.
// KEYS lock, tombstone; ARGV id, retention ms.
var lockAbandonScript = newScript(`
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^(.*):%d+$') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// errAbandoned is an acquire script's answer for an id that was abandoned.
var errAbandoned = errors.New("redislab: request was abandoned")

// lockNode is the single-server lock protocol, shared by Lock and Redlock.
type lockNode struct {
	c         *redis.Client
	key       string
	fenceKey  string
	ttlMillis int64
	retainMs  int64
}

func newLockNode(c *redis.Client, key string, ttl time.Duration) lockNode {
	return lockNode{
		c: c, key: key, fenceKey: key + ":fence",
		ttlMillis: ttl.Milliseconds(),
		retainMs:  retention(ttl).Milliseconds(),
	}
}

func (n lockNode) tomb(id string) string { return n.key + ":abandoned:" + id }

// acquire returns the token (> 0), 0 if held by another, or an error
// (errAbandoned, or an error from the client).
func (n lockNode) acquire(ctx context.Context, id string) (uint64, error) {
	v, err := lockAcquireScript.run(ctx, n.c, false, []string{n.key, n.fenceKey, n.tomb(id)}, id, n.ttlMillis).Int64()
	switch {
	case err != nil:
		return 0, err
	case v < 0:
		return 0, errAbandoned
	}
	return uint64(v), nil
}

func (n lockNode) release(ctx context.Context, value string) (bool, error) {
	v, err := lockReleaseScript.run(ctx, n.c, false, []string{n.key}, value).Int64()
	return v == 1, err
}

func (n lockNode) extend(ctx context.Context, value string, ttl time.Duration) (bool, error) {
	v, err := lockExtendScript.run(ctx, n.c, false, []string{n.key}, value, ttl.Milliseconds()).Int64()
	return v == 1, err
}

func (n lockNode) abandon(ctx context.Context, id string) error {
	return lockAbandonScript.run(ctx, n.c, false, []string{n.key, n.tomb(id)}, id, n.retainMs).Err()
}

func lockValue(id string, token uint64) string {
	return id + ":" + strconv.FormatUint(token, 10)
}

// Lock is a contend.Lock on one Redis server: the lock is a key set with
// SET NX PX by a Lua script that also takes the next fencing token from a
// counter key and stores "<holder id>:<token>" as the value. Release is a
// compare-and-delete script, Extend a compare-and-PEXPIRE script.
//
// Guarantees, while the server runs and keeps its data:
//   - At most one holder as the server sees it: a key with expiry, set
//     only if absent, compared before it is deleted or extended, so a
//     holder can never release or extend another's hold.
//   - Fencing tokens strictly increase from one grant to the next (a
//     counter incremented in the same script as the SET; see nextFenceLua
//     for why they also increase across a restart that loses the counter).
//   - Lease.TTL never overstates the hold as long as the server's clock
//     runs no more than ttl×1% + 2 ms fast over the lease.
//
// Not guaranteed:
//   - Mutual exclusion of the work: a holder that stalls past its TTL is no
//     longer the holder but may not know it. Not safe without fencing:
//     the protected resource must reject writes with an older token.
//   - Surviving a failover or a restart: without persistence (and
//     replication that waits, WAIT/fsync), a restarted or promoted server
//     has forgotten the lock, and grants it again while the old lease is
//     still valid locally. Fencing tokens still increase (see above).
//   - Fairness: waiters poll with exponential backoff with jitter (1 ms
//     doubling to 32 ms); a waiter can be overtaken indefinitely.
//
// Retries: the acquire script is idempotent by holder id (a repeat returns
// the same grant) and an attempt whose outcome is unknown is abandoned with
// a tombstone; see the package doc.
type Lock struct {
	roundTrips
	cleaner
	node lockNode
	ttl  time.Duration
}

// NewLock returns a Lock on key with leases of ttl (at least 1 ms, in whole
// milliseconds). It uses key and key+":fence", and key+":abandoned:<id>"
// for tombstones. Every Lock on the same key must use the same ttl for the
// TTL guarantees to hold. client must have ContextTimeoutEnabled (see
// NewClient); NewLock installs a round-trip counting hook on it.
func NewLock(client *redis.Client, key string, ttl time.Duration) (*Lock, error) {
	if err := checkClient("NewLock", client); err != nil {
		return nil, err
	}
	if err := checkTTL("NewLock", ttl); err != nil {
		return nil, err
	}
	redisx.Instrument(client)
	l := &Lock{node: newLockNode(client, key, ttl), ttl: ttl}
	l.window = retention(ttl)
	return l, nil
}

// earliest returns since if it is set, else start.
func earliest(since, start time.Time) time.Time {
	if since.IsZero() {
		return start
	}
	return since
}

// Acquire waits until it holds the lock, polling with exponential backoff
// with jitter (1 ms to 32 ms), or returns ctx.Err() (wrapped, with the last
// error from Redis if any) once ctx is done. Network errors do not end the
// wait before ctx does: Redis may come back. All attempts of one Acquire use
// one holder id, so an attempt that timed out but ran is picked up by the
// next; if Acquire gives up after such an attempt, the id is abandoned.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	ctx = l.with(ctx)
	id := newID()
	b := redisx.Backoff{D: time.Millisecond, Max: 32 * time.Millisecond}
	var last error
	var since time.Time // start of the first attempt whose outcome is unknown
	for {
		if err := ctx.Err(); err != nil {
			break
		}
		start := time.Now()
		tok, err := l.node.acquire(ctx, id)
		switch {
		case err == nil && tok > 0:
			// The grant may be an earlier attempt's, run late: count the
			// validity from the earliest attempt that may have made it.
			return l.lease(id, tok, earliest(since, start)), nil
		case err == nil:
			// held by another
		case errors.Is(err, errAbandoned):
			return nil, fmt.Errorf("redislab: Lock.Acquire: %w", err) // only after our own abandon: unreachable
		default:
			last = err
			if !redisx.Definitive(err) && since.IsZero() {
				since = start
			}
		}
		if redisx.SleepCtx(ctx, b.Next()) != nil {
			break
		}
	}
	if !since.IsZero() {
		l.abandon(func(ctx context.Context) error { return l.node.abandon(l.with(ctx), id) })
	}
	return nil, redisx.CtxErr("redislab: Lock.Acquire", ctx, last)
}

// TryAcquire makes one attempt: the lock's lease, contend.ErrHeld (wrapped)
// if another holder has it, or the error from Redis. After an error whose
// outcome is unknown (timeout), the attempt is abandoned in the background,
// so a lock it may have taken is freed (or never taken).
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redislab: Lock.TryAcquire: %w", err)
	}
	ctx = l.with(ctx)
	id := newID()
	start := time.Now()
	tok, err := l.node.acquire(ctx, id)
	switch {
	case err == nil && tok > 0:
		return l.lease(id, tok, start), nil
	case err == nil:
		return nil, fmt.Errorf("redislab: Lock.TryAcquire: %w", contend.ErrHeld)
	}
	if !redisx.Definitive(err) {
		l.abandon(func(ctx context.Context) error { return l.node.abandon(l.with(ctx), id) })
	}
	return nil, fmt.Errorf("redislab: Lock.TryAcquire: %w", err)
}

func (l *Lock) lease(id string, tok uint64, start time.Time) *lockLease {
	s := &lockLease{l: l, value: lockValue(id, tok), token: tok}
	s.v.Set(start, l.ttl)
	return s
}

// lockLease is a lease of a Lock.
type lockLease struct {
	l     *Lock
	value string
	token uint64
	v     redisx.Validity
	done  redisx.DoneFlag
}

func (s *lockLease) Token() uint64 { return s.token }

// Release deletes the lock if it still holds this lease's value. ErrNotHeld
// (wrapped) if it does not (expired, taken over, released already, or
// released by an earlier attempt of this call whose reply was lost). On a
// network error the lease is left as it was and Release may be called
// again.
func (s *lockLease) Release(ctx context.Context) error {
	return s.done.Release("redislab: Lock lease Release", func() (bool, error) {
		return s.l.node.release(s.l.with(ctx), s.value)
	})
}

// Extend moves the key's expiry to ttl from now if this lease still holds
// it, and restarts the local validity from the instant before the request.
func (s *lockLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("Lock lease Extend", ttl); err != nil {
		return err
	}
	if s.done.Released() {
		return fmt.Errorf("redislab: Lock lease Extend: %w", contend.ErrNotHeld)
	}
	start := time.Now()
	ok, err := s.l.node.extend(s.l.with(ctx), s.value, ttl)
	if err != nil {
		return fmt.Errorf("redislab: Lock lease Extend: %w", err)
	}
	if !ok {
		return fmt.Errorf("redislab: Lock lease Extend: %w", contend.ErrNotHeld)
	}
	s.v.Set(start, ttl)
	return nil
}

// TTL returns the lease's remaining validity by the local monotonic clock:
// ttl from the instant before the acquiring (or extending) request was
// sent, less elapsed time, less the drift allowance ttl×1% + 2 ms; 0 once
// that has run out.
func (s *lockLease) TTL() (time.Duration, bool) { return s.v.Remaining(), true }
