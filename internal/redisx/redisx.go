// Package redisx is the plumbing the lab's Redis packages share: the lab's
// go-redis client settings and the checks of a user's client, request
// counting, which errors are worth retrying, the local view of a lease's
// validity, backoff, and fail-closed bucket calls. It holds no lock or
// bucket design: those are remote/redislab's (the lab's),
// remote/redisnaive's (the controls) and remote/redisref's (the
// references).
//
// Error texts here carry no package prefix; the packages that return them
// add their own.
package redisx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/contend-lab/contend"
)

// ErrClientConfig is returned (wrapped) for a client that cannot honour
// context deadlines (Options.ContextTimeoutEnabled false), or whose options
// cannot be read to tell.
var ErrClientConfig = errors.New("the client must have Options.ContextTimeoutEnabled set, or calls ignore context deadlines")

// ErrBadTTL is returned (wrapped) for a ttl below a millisecond (Redis
// expires keys in whole milliseconds).
var ErrBadTTL = errors.New("ttl must be at least 1ms")

// ErrNilClient is returned (wrapped) for a nil client.
var ErrNilClient = errors.New("nil client")

// NewClient returns a go-redis client for addr configured as the lab's
// packages expect: context deadlines enforced on the socket
// (ContextTimeoutEnabled), 500 ms read and write timeouts, 250 ms to dial
// with no dial retries, go-redis's default command retries, no CLIENT
// SETINFO and no maintenance notifications, so that connecting costs one
// HELLO.
func NewClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           250 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           500 * time.Millisecond,
		WriteTimeout:          500 * time.Millisecond,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

// Settings is what the lab reads of a client's options.
type Settings struct {
	ContextTimeouts bool // Options.ContextTimeoutEnabled
	PoolSize        int  // connections per server; 0 is go-redis's default
	Sharded         bool // keys are spread over servers by hash slot
}

// ClientSettings returns c's settings, or an error for a nil client or one
// whose options it cannot read: a *redis.Client (standalone, or Sentinel's
// failover client), *redis.ClusterClient or *redis.Ring.
func ClientSettings(c redis.UniversalClient) (Settings, error) {
	switch c := c.(type) {
	case nil:
		return Settings{}, ErrNilClient
	case *redis.Client:
		if c == nil {
			return Settings{}, ErrNilClient
		}
		o := c.Options()
		return Settings{ContextTimeouts: o.ContextTimeoutEnabled, PoolSize: o.PoolSize}, nil
	case *redis.ClusterClient:
		if c == nil {
			return Settings{}, ErrNilClient
		}
		o := c.Options()
		return Settings{ContextTimeouts: o.ContextTimeoutEnabled, PoolSize: o.PoolSize, Sharded: true}, nil
	case *redis.Ring:
		if c == nil {
			return Settings{}, ErrNilClient
		}
		o := c.Options()
		return Settings{ContextTimeouts: o.ContextTimeoutEnabled, PoolSize: o.PoolSize, Sharded: true}, nil
	}
	return Settings{}, fmt.Errorf("a %T: only a *redis.Client, *redis.ClusterClient or *redis.Ring tells whether it honours context deadlines: %w", c, ErrClientConfig)
}

// CheckClient returns an error for a nil client, one whose options cannot
// be read (see ClientSettings), or one without ContextTimeoutEnabled.
func CheckClient(c redis.UniversalClient) (Settings, error) {
	s, err := ClientSettings(c)
	if err != nil {
		return s, err
	}
	if !s.ContextTimeouts {
		return s, ErrClientConfig
	}
	return s, nil
}

// CheckKey returns a *contend.ConfigError (Of of, Field "key") when a
// design that keeps several keys derived from key (key+":fence", ...) in
// one script runs on a sharded client and key has no hash tag: the derived
// keys would hash to other slots, and Redis Cluster refuses such scripts
// (CROSSSLOT). A key such as "{orders}" or "lock:{orders}" keeps them in
// one slot.
func CheckKey(s Settings, of, key string) error {
	if !s.Sharded || HashTag(key) != "" {
		return nil
	}
	return &contend.ConfigError{Of: of, Field: "key", Value: fmt.Sprintf("%q", key),
		Reason: fmt.Sprintf("on a sharded client the key needs a hash tag, such as %q, so that the keys derived from it share its hash slot", "{"+key+"}")}
}

// HashTag returns the hash tag of key as Redis Cluster reads it: the text
// between the first '{' and the first '}' after it, if not empty.
func HashTag(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return ""
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok {
		return ""
	}
	return tag
}

// CheckTTL returns ErrBadTTL (wrapped, with the value) for ttl < 1 ms.
func CheckTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("ttl %v: %w", ttl, ErrBadTTL)
	}
	return nil
}

// ---- request counting ----

type counterKey struct{}

// Counter counts the commands one implementation sends. Embed it and tag
// the contexts of the implementation's commands with With; the hook that
// Instrument installs does the counting.
type Counter struct{ n atomic.Int64 }

// RoundTrips returns how many commands (round trips to Redis) the
// implementation has sent so far, including failed ones and the HELLO that
// go-redis sends to set up a new connection on behalf of one of them; a
// pipeline counts once. go-redis's own retries of a command are not
// counted: the hook sits above its retry loop.
func (r *Counter) RoundTrips() int64 { return r.n.Load() }

// With returns ctx tagged so that the hook counts its commands for r.
func (r *Counter) With(ctx context.Context) context.Context {
	return context.WithValue(ctx, counterKey{}, r)
}

// countingHook increments the Counter found in a command's context.
type countingHook struct{}

func (countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if r, ok := ctx.Value(counterKey{}).(*Counter); ok {
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if r, ok := ctx.Value(counterKey{}).(*Counter); ok {
			r.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

var hooked sync.Map // redis.UniversalClient -> struct{}: clients with countingHook

// Instrument installs the counting hook on c once. go-redis publishes hooks
// copy-on-write, so installing one on a client already in use is safe;
// commands that do not carry a Counter in their context pass through it
// untouched.
func Instrument(c redis.UniversalClient) {
	if _, loaded := hooked.LoadOrStore(c, struct{}{}); !loaded {
		c.AddHook(countingHook{})
	}
}

// ---- waiting ----

// Backoff is capped exponential backoff with jitter: each wait is uniform
// in [D/2, D], and D doubles up to Max.
type Backoff struct{ D, Max time.Duration }

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	d := b.D
	b.D = min(2*b.D, b.Max)
	return Jitter(d)
}

// Jitter returns a duration uniform in [d/2, d].
func Jitter(d time.Duration) time.Duration {
	half := int64(d / 2)
	return time.Duration(half + rand.Int64N(half+1))
}

// SleepCtx waits d or until ctx is done, and returns ctx.Err() in that case.
func SleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ---- leases ----

// DriftFor is Redlock's clock-drift allowance: ttl×1% + 2 ms.
func DriftFor(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// Validity is the local view of a lease's expiry: ttl from a start instant
// taken before the request was sent, less the drift allowance.
type Validity struct {
	mu    sync.Mutex
	start time.Time // monotonic
	ttl   time.Duration
}

// Set restarts the validity: ttl from start.
func (v *Validity) Set(start time.Time, ttl time.Duration) {
	v.mu.Lock()
	v.start, v.ttl = start, ttl
	v.mu.Unlock()
}

// Remaining returns what is left of the validity, 0 once it ran out.
func (v *Validity) Remaining() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return max(0, v.ttl-time.Since(v.start)-DriftFor(v.ttl))
}

// DoneFlag records that a lease was released, and serialises Release calls
// on one lease so that a retry after a network error is the only one in
// flight.
type DoneFlag struct {
	mu       sync.Mutex
	released bool
}

// Released reports whether the lease was released.
func (d *DoneFlag) Released() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.released
}

// Release runs fn once the lease is not yet released; fn reports whether
// the server held the lease. A definitive answer (held or not) marks the
// lease released; an error leaves it as it was, so the caller may retry.
// Errors are prefixed with op ("redislab: Lock lease Release").
func (d *DoneFlag) Release(op string, fn func() (bool, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.released {
		return fmt.Errorf("%s: %w", op, contend.ErrNotHeld)
	}
	held, err := fn()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d.released = true
	if !held {
		return fmt.Errorf("%s: %w", op, contend.ErrNotHeld)
	}
	return nil
}

// ---- errors ----

// Definitive reports whether err is a reply from the server (the command
// ran, or was rejected without running), as opposed to a network or context
// error after which the command may or may not run.
func Definitive(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return true
	}
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// transientReplies are the error replies that clear without anyone acting
// on the client: a server loading its data (LOADING) or busy in a script
// (BUSY), a cluster resharding or electing (TRYAGAIN, CLUSTERDOWN), a
// replica cut from its master or a master short of replicas (MASTERDOWN,
// NOREPLICAS), a write that reached a demoted master during a failover
// (READONLY), a full server (max clients). go-redis retries the same
// replies itself, BUSY apart.
var transientReplies = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "READONLY", "ERR max number of clients reached"}

// Transient reports whether an attempt that failed with err may succeed if
// made again unchanged: a network error (refused, reset, timed out), a
// context deadline of the attempt's own, a full connection pool, or one of
// the transient error replies above. Everything else is permanent and
// retrying cannot help: a refused password (WRONGPASS, NOAUTH), a missing
// permission (NOPERM), a key of the wrong type (WRONGTYPE), a server out of
// memory (OOM: it needs an operator), any other error reply, a closed
// client, or an unexpected reply.
func Transient(err error) bool {
	var re redis.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &re):
		for _, p := range transientReplies {
			if strings.HasPrefix(re.Error(), p) {
				return true
			}
		}
		return false
	case errors.Is(err, redis.ErrClosed), isTLSConfig(err):
		return false
	}
	return isNetwork(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// isNetwork reports whether err is a failure to reach the server or to
// hear from it: a dial, read or write error, or a pool that had no
// connection to give.
func isNetwork(err error) bool {
	var ne interface{ Timeout() bool } // net.Error, and the os and tls errors that wrap one
	return errors.As(err, &ne) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isTLSConfig reports whether err is a TLS failure that the same settings
// will meet again: a certificate the client does not trust, or a server
// that does not speak TLS (or speaks it where the client does not).
func isTLSConfig(err error) bool {
	var header tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var authority x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &header) || errors.As(err, &verify) || errors.As(err, &alert) ||
		errors.As(err, &authority) || errors.As(err, &host) || errors.As(err, &invalid)
}

// Attempts records what the attempts of one waiting call ran into, so that
// the error it returns when its context ends says why it was still waiting:
// the last outcome that was not the caller's context ending.
type Attempts struct {
	last    error // the last attempt's error, if it failed
	held    bool  // the last attempt found the lock held
	noReply bool  // an attempt died waiting for a reply when the context ended
}

// Held records an attempt answered "held by another".
func (a *Attempts) Held() { a.last, a.held = nil, true }

// Failed records an attempt that failed with err, ctx being the call's
// context. An attempt that the call's context ended (go-redis reports the
// deadline, or the socket's timeout set from it) changes nothing but
// noting it: the outcome before it is the news.
func (a *Attempts) Failed(ctx context.Context, err error) {
	var timeout interface{ Timeout() bool }
	// The socket's deadline can fire a moment before the context's timer
	// marks it done: a deadline in the past counts as ended.
	deadline, ok := ctx.Deadline()
	ended := ctx.Err() != nil || ok && !time.Now().Before(deadline)
	if ended && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.As(err, &timeout) && timeout.Timeout()) {
		a.noReply = true
		return
	}
	a.last, a.held = err, false
}

// Err wraps ctx.Err() for op with what the attempts ran into: the last
// error that was not the context ending, "held by another holder", or "no
// reply from Redis" when the only attempts died waiting for the server.
func (a *Attempts) Err(op string, ctx context.Context) error {
	switch {
	case a.last != nil:
		return fmt.Errorf("%s: %w (last error: %w)", op, ctx.Err(), a.last)
	case a.held:
		return fmt.Errorf("%s: %w (held by another holder)", op, ctx.Err())
	case a.noReply:
		return fmt.Errorf("%s: %w (no reply from Redis)", op, ctx.Err())
	}
	return fmt.Errorf("%s: %w", op, ctx.Err())
}

// CtxErr wraps ctx.Err() for op, with the last error seen, if any.
func CtxErr(op string, ctx context.Context, last error) error {
	if last != nil {
		return fmt.Errorf("%s: %w (last error: %w)", op, ctx.Err(), last)
	}
	return fmt.Errorf("%s: %w", op, ctx.Err())
}

// ---- buckets ----

// DefaultTakeTimeout bounds each TryTake of a Redis bucket.
const DefaultTakeTimeout = 250 * time.Millisecond

// ContextTaker is a bucket whose decision can fail: a network round trip.
type ContextTaker interface {
	TryTakeContext(ctx context.Context, n int64) (bool, error)
}

// FailClosed turns a ContextTaker's TryTakeContext into contend.Bucket's
// TryTake: bounded by a timeout, false on any error, and the error kept for
// LastError. Embedded by every Redis bucket.
type FailClosed struct {
	mu      sync.Mutex
	lastErr error
}

// Take calls t.TryTakeContext bounded by timeout; false on any error.
func (f *FailClosed) Take(t ContextTaker, timeout time.Duration, n int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ok, err := t.TryTakeContext(ctx, n)
	if err != nil {
		f.mu.Lock()
		f.lastErr = err
		f.mu.Unlock()
	}
	return ok
}

// LastError returns the error of the last TryTake that failed, or nil if
// none has.
func (f *FailClosed) LastError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}
