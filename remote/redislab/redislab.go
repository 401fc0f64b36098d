// Package redislab is the lab's Redis designs: locks, semaphores and a
// token bucket whose state lives in Redis, so that processes on different
// machines share them. (It is not named redis, so that it does not shadow
// go-redis's package, which its users import beside it.)
//
//	NewLock       one server: fair (FIFO, handed on at release), fencing tokens
//	NewRedlock    Redlock over N independent servers, quorum N/2+1; not fair
//	NewSemaphore  FIFO semaphore in one script on the server's clock, expiring holders
//	NewBucket     GCRA token bucket in one script on the server's clock, integer arithmetic
//
// The flawed designs that articles still teach are kept as controls in
// remote/redisnaive; the libraries users would otherwise pick (redsync,
// bsm/redislock, redis_rate) are adapted in remote/redisref.
//
// # Clients
//
// Constructors take the caller's go-redis client, with its password, TLS
// and DB: a *redis.Client (standalone, or Sentinel's failover client), a
// *redis.ClusterClient or a *redis.Ring, with Options.ContextTimeoutEnabled
// (without it, go-redis ignores context deadlines on the socket:
// ErrClientConfig; NewClient makes a suitable client). On a Cluster or a
// Ring the key needs a hash tag, such as "{orders}", so that the keys
// derived from it share its slot. Constructors add a hook to the client
// that counts each implementation's commands (RoundTrips); other commands
// pass through it untouched.
//
// # Errors
//
// Acquire retries what may clear by itself (a refused or dropped
// connection, a timeout, LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN,
// NOREPLICAS, READONLY) until its context ends, and then says what it last
// ran into. Anything else (WRONGPASS, NOAUTH, NOPERM, WRONGTYPE, OOM, a
// closed client, an untrusted TLS certificate) is returned at once.
//
// # What a network lock can and cannot promise
//
// A lease is valid until its TTL runs out, as the holder's clock sees it
// (Lease.TTL): ttl from an instant before the grant, less a drift
// allowance of ttl×1% + 2 ms; correct while the server's clock runs at most
// that much faster than the holder's. A holder that stalls past it keeps
// running with a lease it no longer holds, so mutual exclusion of the work
// needs the protected resource to reject writes with a fencing token
// (Lease.Token) older than one it has seen. Tokens keep increasing across a
// restart that lost them (see nextFenceLua), but without persistence, or
// across a failover, a server forgets its locks and grants them again.
//
// # Retries and idempotency
//
// go-redis retries a command after a timeout or a dropped connection, so a
// write may run twice, the first attempt late. Lock, Redlock and Semaphore
// writes are idempotent by holder id: a repeated acquire returns the grant
// it made (same token), and Release and Extend compare the id. A request
// whose outcome is unknown, or a waiter that gives up, is abandoned: a
// background clean-up writes a tombstone for its id, so that the request,
// should it run later, grants nothing, and undoes or passes on what it got;
// it retries for the tombstone's retention, max(10×ttl, 10 s), and Settle
// waits for it. A request that runs later still can hold the lock, or a
// place in the queue, nobody waits on, for one ttl at most. The Bucket's
// script is sent at most once: a lost reply can waste tokens but never
// spend them twice.
//
// # Fairness
//
// Lock serves waiters in the order they queued, so its tail Acquire latency
// stays close to its median, where a polling lock's can be far above it
// (BenchmarkLockHandoff). A waiting Acquire takes a ticket in a FIFO queue
// (a sorted set). Release, in the same script, gives the lock to the first
// live waiter (the key now names it, with a new token and a full ttl) and
// tells it: through the waiter's process's wake-up list, on which one
// listener goroutine per Lock value blocks (BLPOP) for all of that value's
// waiters, so that 100 waiters hold one connection, not 100; or, when the
// waiter is in the releaser's own process, in the release's reply. The
// waiter takes the lease without a round trip: the token exceeds the
// fencing counter its last poll saw, so the hand-off, and the ttl it
// started, came after that poll, and the lease counts its TTL from there.
//
// Waiters poll at most every pollEvery, and when the holder's expiry is
// due: that keeps their place (a waiter silent for waiterStale is skipped
// when it reaches the head), recovers a lost wake-up, and takes over from a
// crashed holder. A waiter whose context ends is abandoned: its tombstone
// script leaves the queue and passes on a lock handed to it meanwhile. A
// waiter whose process dies after its last poll can be handed the lock,
// which then expires after one ttl, as a crashed holder's does.
//
// Redlock's
// contenders race on every server and back off, with no order between them.
// A fair Redlock would need the servers to agree on who is next: a queue on
// each, a ticket order shared by a quorum (a bakery algorithm over quorums),
// a wake-up from each server, and a rule for a waiter that is first on some
// servers and not others. That is a consensus protocol's work: a lock that
// must be fair and survive a server's loss is better built on one
// (ZooKeeper, etcd).
package redislab

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redisx"

	"github.com/redis/go-redis/v9"
)

// ErrClientConfig is returned (wrapped) by the constructors for a client
// that cannot honour context deadlines (Options.ContextTimeoutEnabled
// false), or whose options cannot be read.
var ErrClientConfig = redisx.ErrClientConfig

// ErrBadTTL is returned (wrapped) for a ttl that is not positive, or below a
// millisecond (Redis expires keys in whole milliseconds).
var ErrBadTTL = redisx.ErrBadTTL

// NewClient returns a go-redis client for addr configured as this package
// expects: context deadlines enforced on the socket
// (ContextTimeoutEnabled), 500 ms read and write timeouts, 250 ms to dial
// with no dial retries, go-redis's default command retries, no CLIENT
// SETINFO and no maintenance notifications, so that connecting costs one
// HELLO.
func NewClient(addr string) *redis.Client { return redisx.NewClient(addr) }

// checkClient checks a client and key for op, and instruments the client.
func checkClient(op, of string, c redis.UniversalClient, key string) (redisx.Settings, error) {
	s, err := redisx.CheckClient(c)
	if err != nil {
		return s, fmt.Errorf("redislab: %s: %w", op, err)
	}
	if err := redisx.CheckKey(s, of, key); err != nil {
		return s, err
	}
	redisx.Instrument(c)
	return s, nil
}

func checkTTL(op string, ttl time.Duration) error {
	if err := redisx.CheckTTL(ttl); err != nil {
		return fmt.Errorf("redislab: %s: %w", op, err)
	}
	return nil
}

// notConstructed is the error of a method called on a zero value.
func notConstructed(op string) error {
	return fmt.Errorf("redislab: %s: %w", op, contend.ErrNotConstructed)
}

// roundTrips counts the commands one implementation sends; embedding it
// gives the implementation its RoundTrips method.
type roundTrips struct{ rt redisx.Counter }

// RoundTrips returns how many commands (round trips to Redis) the
// implementation has sent so far, counted above go-redis's retry loop: a
// retried command counts once; a script loaded after NOSCRIPT, or a
// command that needed a new connection (its HELLO), counts twice. A Lock's
// count includes its wake-up listener's BLPOPs.
func (r *roundTrips) RoundTrips() int64 { return r.rt.RoundTrips() }

func (r *roundTrips) with(ctx context.Context) context.Context { return r.rt.With(ctx) }

// ---- scripts ----

// script is a Lua script run by EVALSHA, loaded by EVAL on NOSCRIPT (a new
// or restarted server).
type script struct {
	src, sha string
}

func newScript(src string) *script {
	s := redis.NewScript(src)
	return &script{src: src, sha: s.Hash()}
}

// noRetryCmd is a command go-redis sends at most once: it is never retried
// after it may have reached the server.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// run runs s on c; with noRetry the command is sent at most once.
func (s *script) run(ctx context.Context, c redis.UniversalClient, noRetry bool, keys []string, args ...any) *redis.Cmd {
	cmd := s.cmd(ctx, c, noRetry, "evalsha", s.sha, keys, args)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = s.cmd(ctx, c, noRetry, "eval", s.src, keys, args)
	}
	return cmd
}

func (s *script) cmd(ctx context.Context, c redis.UniversalClient, noRetry bool, verb, body string, keys []string, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, verb, body, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := redis.NewCmd(ctx, a...)
	if noRetry {
		_ = c.Process(ctx, noRetryCmd{cmd})
	} else {
		_ = c.Process(ctx, cmd)
	}
	return cmd
}

// nextFenceLua defines fence(key, now_us): INCR key, but never below the
// server's clock in microseconds. The floor keeps tokens increasing across
// a restart that lost the counter (no persistence), provided the restarted
// server's clock reads later than the last token issued: tokens can only
// outrun the clock by issuing more than one per microsecond for a
// sustained time, which one Redis cannot do. Values stay below 2^53, so Lua
// numbers (doubles) hold them exactly.
const nextFenceLua = `
local function fence(key, now)
  local f = redis.call('INCR', key)
  if f < now then
    redis.call('SET', key, now)
    f = now
  end
  return f
end
local function servertime()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

// ---- ids, clean-up ----

// newID returns a random holder id (26 base32 characters, 130 bits).
func newID() string { return crand.Text() }

// errAbandoned is an acquire script's answer for an id that was abandoned:
// only a request that runs after its own Acquire gave up gets it.
var errAbandoned = errors.New("request was abandoned")

// cleaner runs clean-ups of abandoned requests in the background.
type cleaner struct {
	wg     sync.WaitGroup
	window time.Duration
}

// retention is how long a tombstone lives, and how long a clean-up keeps
// trying to write it: max(10×ttl, 10 s).
func retention(ttl time.Duration) time.Duration { return max(10*ttl, 10*time.Second) }

// abandon runs fn (a clean-up script) until it succeeds, fails for good,
// the window runs out or the client is closed, each attempt bounded by
// 250 ms, with backoff from 5 to 200 ms.
func (c *cleaner) abandon(fn func(ctx context.Context) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		deadline := time.Now().Add(c.window)
		b := redisx.Backoff{D: 5 * time.Millisecond, Max: 200 * time.Millisecond}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
			err := fn(ctx)
			cancel()
			if err == nil || !redisx.Transient(err) || time.Now().After(deadline) {
				return
			}
			time.Sleep(b.Next())
		}
	}()
}

// Settle waits until every clean-up of an abandoned request has reached the
// server (or given up after its window), or until ctx is done. Call it
// before closing the client, so that no abandoned request is left to
// expire on its own; tests call it before comparing the server's state
// with what the clients hold.
func (c *cleaner) Settle(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redislab: Settle: %w", ctx.Err())
	}
}

// earliest returns since if it is set, else start.
func earliest(since, start time.Time) time.Time {
	if since.IsZero() {
		return start
	}
	return since
}
