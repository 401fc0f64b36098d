// Package redislab is the lab's Redis designs: locks, semaphores and a
// token bucket whose state lives in Redis, so that processes on different
// machines share them. (It is not named redis, so that it does not shadow
// go-redis's package, which its users import beside it.)
//
//	NewLock       SET NX PX plus a fencing counter in one script; compare-and-delete release
//	NewRedlock    Redlock over N independent servers, quorum N/2+1
//	NewSemaphore  FIFO semaphore in one script on the server's clock, with expiring holders
//	NewBucket     GCRA token bucket in one script on the server's clock, integer arithmetic
//
// The flawed designs that articles still teach live in remote/redisnaive,
// kept as controls; the libraries users would otherwise pick (redsync,
// bsm/redislock, redis_rate) are adapted in remote/redisref. Both are held
// to the same tests.
//
// # What a network lock can and cannot promise
//
// A lease of a Redis lock is valid until its TTL runs out, as the holder's
// clock sees it (Lease.TTL). A holder that stalls (GC pause, swapped out,
// SIGSTOP) past that instant keeps running with a lease it no longer holds,
// and nothing in Redis can stop it. Mutual exclusion of the *work* therefore
// needs the protected resource to check the fencing token (Lease.Token) and
// reject writes carrying a token older than one it has seen. Every lock here
// is "not safe without fencing" in that sense; Redlock is not safe even with
// it (see Redlock).
//
// Lease.TTL is conservative: it is measured on the local monotonic clock
// from the instant *before* the acquiring request was sent (before the
// first attempt of an Acquire whose outcome was unknown, if there was one,
// since the grant may be that attempt's, run late), and subtracts a drift
// allowance of ttl×1% + 2 ms (Redlock's). It is correct only while the
// server's clock runs at most that much faster than the holder's over the
// lease (Redis expires keys on its own clock).
//
// # Retries and idempotency
//
// go-redis retries a command up to Options.MaxRetries times (3 by default)
// after a read timeout, a dropped connection or a dial error, so a write can
// be applied twice: the first attempt may sit in a stalled server's socket
// buffer and run after it resumes, next to the retry. This package deals
// with that as follows:
//
//   - Lock, Redlock and Semaphore writes are idempotent by request id: every
//     acquisition carries a random holder id, and a repeated acquire script
//     with the same id returns the grant it made before (same fencing token)
//     instead of granting again. Release and Extend compare the id, so a
//     repeat can never free or extend someone else's hold (a repeated
//     Release whose first attempt succeeded reports ErrNotHeld: the hold is
//     gone either way).
//   - A request whose outcome is unknown (it timed out, or its context ended
//     while it was in flight) is abandoned: a background clean-up writes a
//     tombstone for its id, so that the request, should it still run later,
//     grants nothing, and frees what it granted if it ran already. The
//     clean-up retries until it reaches the server or its window (the
//     tombstone's retention, max(10×ttl, 10 s)) runs out; Settle waits for
//     it. A request that runs after its tombstone expired can still grant a
//     hold nobody knows of, which then lasts one ttl.
//   - The Bucket disables go-redis's retries for its script instead (the
//     command is marked NoRetry): a decision is sent at most once, so tokens
//     are never taken twice; a decision whose reply is lost counts as a
//     refusal (fail closed), and may have taken tokens that nobody uses.
//   - The naive controls use plain commands and inherit every retry hazard;
//     that is part of what they demonstrate.
//
// # Client requirements
//
// Constructors reject a client without Options.ContextTimeoutEnabled:
// without it go-redis ignores context deadlines on the socket and a call to
// a stalled server blocks for ReadTimeout (5 s by default) per attempt,
// breaking every "bounded by ctx" promise here. NewClient returns a client
// configured as this package expects.
//
// # Round trips
//
// Every implementation counts the commands it sends (RoundTrips), with a
// go-redis hook installed on its client that increments the counter of the
// implementation named in the command's context. The hook sits above
// go-redis's retry loop, so a command retried by go-redis counts once; a
// script that has to be loaded after NOSCRIPT counts twice, and so does a
// command that needed a new connection (its HELLO counts).
//
// Keys: every implementation derives its keys from the key it is given by
// appending suffixes (":fence", ":holders", ...). They are not in one hash
// slot, so none of this is meant for Redis Cluster.
package redislab

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/redis/go-redis/v9"
)

// ErrClientConfig is returned (wrapped) by the constructors for a client
// that cannot honour context deadlines (Options.ContextTimeoutEnabled false).
var ErrClientConfig = redisx.ErrClientConfig

// ErrBadTTL is returned (wrapped) for a ttl that is not positive, or below a
// millisecond (Redis expires keys in whole milliseconds).
var ErrBadTTL = redisx.ErrBadTTL

// NewClient returns a go-redis client for addr configured as this package
// expects: context deadlines enforced on the socket
// (ContextTimeoutEnabled), 500 ms read and write timeouts, 250 ms to dial
// with no dial retries, go-redis's default command retries (MaxRetries 3;
// see the package doc for why they are safe here), no CLIENT SETINFO and no
// maintenance notifications, so that connecting costs one HELLO.
func NewClient(addr string) *redis.Client { return redisx.NewClient(addr) }

func checkClient(op string, c *redis.Client) error {
	if err := redisx.CheckClient(c); err != nil {
		return fmt.Errorf("redislab: %s: %w", op, err)
	}
	return nil
}

func checkTTL(op string, ttl time.Duration) error {
	if err := redisx.CheckTTL(ttl); err != nil {
		return fmt.Errorf("redislab: %s: %w", op, err)
	}
	return nil
}

// roundTrips counts the commands one implementation sends; embedding it
// gives the implementation its RoundTrips method.
type roundTrips struct{ rt redisx.Counter }

// RoundTrips returns how many commands (round trips to Redis) the
// implementation has sent so far; see the package doc.
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
func (s *script) run(ctx context.Context, c *redis.Client, noRetry bool, keys []string, args ...any) *redis.Cmd {
	cmd := s.cmd(ctx, c, noRetry, "evalsha", s.sha, keys, args)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = s.cmd(ctx, c, noRetry, "eval", s.src, keys, args)
	}
	return cmd
}

func (s *script) cmd(ctx context.Context, c *redis.Client, noRetry bool, verb, body string, keys []string, args []any) *redis.Cmd {
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

// ---- ids, backoff, leases ----

// newID returns a random holder id (26 base32 characters, 130 bits).
func newID() string { return crand.Text() }

// cleaner runs clean-ups of abandoned requests in the background.
type cleaner struct {
	wg     sync.WaitGroup
	window time.Duration
}

// retention is how long a tombstone lives, and how long a clean-up keeps
// trying to write it: max(10×ttl, 10 s).
func retention(ttl time.Duration) time.Duration { return max(10*ttl, 10*time.Second) }

// abandon runs fn (a clean-up script) until it succeeds, the window runs
// out or the client is closed, each attempt bounded by 250 ms, with backoff
// from 5 to 200 ms.
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
			if err == nil || errors.Is(err, redis.ErrClosed) || time.Now().After(deadline) {
				return
			}
			time.Sleep(b.Next())
		}
	}()
}

// Settle waits until every clean-up of an abandoned request has reached the
// server (or given up after its window), or until ctx is done. Tests call
// it before comparing the server's state with what the clients hold.
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
