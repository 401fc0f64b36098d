// Package mutex is the lab's baseline strategy: state guarded by a
// sync.Mutex. Every operation is linearizable; every operation, reads
// included, serialises on one lock.
//
//   - [Counter] and [Bucket]: a counter and the exact token bucket under
//     one sync.Mutex.
//   - [Lock]: a [contend.Lock] on a sync.Mutex that honours a context.
//   - [ReentrantMutex]: a mutex the goroutine holding it may lock again,
//     with [ReentrantLock], [ReentrantCounter] and [ReentrantBucket] built
//     on it, for code ported from languages whose locks are reentrant.
//
// # Waiting with a context
//
// sync.Mutex.Lock cannot be interrupted. So a blocked Acquire whose context
// can never be done (ctx.Done() == nil, e.g. context.Background) waits in
// Lock, parked by the runtime, and any other waiter parks on ctx.Done() and
// on a wake-up channel instead, and tries again whenever a release signals
// it (wakeup says why no wake-up is lost). Those waiters are not in
// sync.Mutex's queue, so they get none of its starvation-mode protection (a
// waiter queued in Lock for over 1 ms is handed the lock directly): under
// heavy contention they may be overtaken repeatedly. A waiter that takes
// the lock checks ctx once more and, if it is done, unlocks again and
// fails, so a ctx that ended before the release it took over from always
// fails (go.dev/issue/63615).
//
// The alternative the lab rejected is polling TryLock with exponential
// sleeps: a sleep under 1 ms is rounded up to the netpoller's 1 ms
// granularity on an idle Linux machine, so a poller would see the lock free
// up to 1 ms late. Here a waiter is woken by the release itself.
//
// A failed sync.Mutex.TryLock alone does not mean held: it fails on an
// unlocked mutex in starvation mode (handed to a waiter) or when its CAS
// races a change of the mutex's state. So Lock keeps a held bit of its own
// beside its token count, and ReentrantMutex an owner word, and only
// those are read as "held".
//
// # Identifying the owner of a ReentrantMutex
//
// The owner is the address of the runtime's g structure of the calling
// goroutine, read from thread-local storage by a two-line assembly function
// on amd64 and arm64 (goroutineID), or elsewhere by the goroutine number
// parsed from runtime.Stack (BenchmarkGoroutineID compares the two). A g
// address is unique among live goroutines; the runtime may reuse it for a
// new goroutine after the old one exits. So a goroutine that exits while
// holding the lock (already a bug: the lock is never released) may let a
// later goroutine that reuses its g acquire it, instead of blocking
// forever.
//
// The owner word is atomic because Lock compares it with the caller's id
// before taking the inner lock, while the holder may be changing it. Only
// the holder ever stores its own id there, so a goroutine reads its own id
// only if it holds the lock. The depth is read and written only by the
// holder.
package mutex

import (
	"context"
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a [contend.Counter] guarded by a sync.Mutex. Add and Load are
// linearizable, and the zero value is a zero counter. Cost: one lock and
// unlock per call, and no allocation; under contention callers queue on the
// lock (BenchmarkCounter).
type Counter struct {
	mu sync.Mutex
	n  int64
}

// NewCounter returns a zero Counter.
func NewCounter() *Counter { return new(Counter) }

// Add adds delta to the counter.
func (c *Counter) Add(delta int64) {
	c.mu.Lock()
	c.n += delta
	c.mu.Unlock()
}

// Load returns the counter's value.
func (c *Counter) Load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Bucket is a [contend.Bucket] guarded by a sync.Mutex: exact and
// linearizable like cas.Bucket (the textbook bucket, within
// refill.Tolerance), with the clock read under the lock so that decisions
// take effect in the order of their readings. Cost: one lock and unlock, one
// clock read and a few multiplications per request, and no allocation; under
// contention requests queue on the lock, clock read included.
type Bucket struct {
	p   bucketcore.Params
	mu  sync.Mutex
	tat uint64 // see package refill
}

// NewBucket returns a full Bucket, or a *contend.ConfigError.
func NewBucket(cfg contend.BucketConfig) (*Bucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Bucket{p: p}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *Bucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	b.mu.Lock()
	next, ok := b.p.Limit.Take(b.tat, b.p.Elapsed(), uint64(n))
	if ok {
		b.tat = next
	}
	b.mu.Unlock()
	return ok
}

// The contend.Limiter methods, written once in internal/bucketcore over
// the state and its lock; none is on TryTake's path.

// Capacity returns the most tokens the bucket holds.
func (b *Bucket) Capacity() int64 { return b.p.Capacity() }

// Rate returns the refill rate in tokens per second, as configured.
func (b *Bucket) Rate() float64 { return b.p.Rate() }

// Tokens returns the whole tokens available now, negative while bookings
// owe more than the bucket holds (see contend.Limiter).
func (b *Bucket) Tokens() int64 { return b.p.Tokens(b.cell()) }

// Delay returns how long from now until n tokens are due, without taking
// them: 0 if TryTake(n) would be granted now.
func (b *Bucket) Delay(n int64) (time.Duration, error) { return b.p.Delay(b.cell(), n) }

// Reserve books n tokens, due now or later; see contend.Limiter.
func (b *Bucket) Reserve(n int64) (contend.Reservation, error) { return b.p.Reserve(b.cell(), n) }

// Wait books n tokens and blocks on a timer until they are due; see
// contend.Limiter.
func (b *Bucket) Wait(ctx context.Context, n int64) error { return b.p.Wait(ctx, b.cell(), n) }

func (b *Bucket) cell() bucketcore.Cell { return bucketcore.Locked(&b.mu, &b.tat) }

var _ contend.Limiter = (*Bucket)(nil)
