// Package redisx is the plumbing the lab's Redis packages share: the lab's
// go-redis client settings, request counting, TTL and client checks, the
// local view of a lease's validity, backoff, and fail-closed bucket calls.
// It holds no lock or bucket design: those are remote/redislab's (the lab's),
// remote/redisnaive's (the controls) and remote/redisref's (the
// references).
//
// Error texts here carry no package prefix; the packages that return them
// add their own.
package redisx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/contend-lab/contend"
)

// ErrClientConfig is returned (wrapped) for a client that cannot honour
// context deadlines (Options.ContextTimeoutEnabled false).
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

// CheckClient returns an error for a nil client or one without
// ContextTimeoutEnabled.
func CheckClient(c *redis.Client) error {
	if c == nil {
		return ErrNilClient
	}
	if !c.Options().ContextTimeoutEnabled {
		return ErrClientConfig
	}
	return nil
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

var hooked sync.Map // *redis.Client -> struct{}: clients with countingHook

// Instrument installs the counting hook on c once. Install it before the
// client is shared between goroutines (the constructors do): go-redis's
// AddHook is not synchronised with commands in flight.
func Instrument(c *redis.Client) {
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
