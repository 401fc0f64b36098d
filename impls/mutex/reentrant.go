package mutex

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Errors returned by ReentrantMutex.TryUnlock.
var (
	// ErrNotLocked: TryUnlock on a ReentrantMutex nobody holds.
	ErrNotLocked = errors.New("mutex: unlock of an unlocked ReentrantMutex")
	// ErrNotOwner: TryUnlock by a goroutine other than the holder.
	ErrNotOwner = errors.New("mutex: unlock of a ReentrantMutex held by another goroutine")
)

// ReentrantMutex is a mutual exclusion lock that the goroutine holding it
// may acquire again: each Lock (or successful TryLock) by the holder adds
// one to a depth, each Unlock takes one away, and the lock is released when
// the depth returns to zero. sync.Mutex is deliberately not reentrant (a
// goroutine that locks it twice deadlocks); this is the wrapper people write
// when they port code that relies on Java's ReentrantLock. Its zero value is
// an unlocked mutex. It must not be copied after first use.
//
// Fairness and blocking are sync.Mutex's: Lock by a non-holder queues on
// the inner mutex. The owner is identified by its goroutine's runtime
// structure, which the runtime may reuse once that goroutine exits (see the
// package documentation).
//
// Cost: one goroutine-id read (an assembly function on amd64 and arm64;
// elsewhere runtime.Stack, far slower and allocating: BenchmarkGoroutineID)
// and one atomic load on top of sync.Mutex; a reentrant acquisition touches
// no shared word but the owner.
type ReentrantMutex struct {
	mu    sync.Mutex
	owner atomic.Uintptr // goroutineID of the holder; 0 when unlocked
	depth uint64         // Locks by the holder not yet undone; touched only by the holder
}

// Lock acquires m, or deepens the hold if the calling goroutine holds it.
func (m *ReentrantMutex) Lock() {
	me := goroutineID()
	if m.owner.Load() == me {
		m.depth++
		return
	}
	m.mu.Lock()
	m.own(me)
}

// TryLock acquires m, or deepens the hold, without blocking, and reports
// whether it did. It fails only once it has seen another goroutine hold m.
func (m *ReentrantMutex) TryLock() bool {
	me := goroutineID()
	if m.owner.Load() == me {
		m.depth++
		return true
	}
	if !m.takeInner() {
		return false
	}
	m.own(me)
	return true
}

// takeInner takes mu and reports true, or reports false once it has seen an
// owner. A failed sync.Mutex.TryLock alone does not mean held: it fails on
// an unlocked mutex in starvation mode (handed to a waiter in Lock) or when
// its CAS races a change of the mutex's state. While mu is neither free
// nor owned (between a Lock and its owner store, or an owner's clearing
// and its Unlock, or in a hand-off) it yields its P and tries again: each
// of those ends in a few instructions of a running or runnable goroutine.
func (m *ReentrantMutex) takeInner() bool {
	for {
		if m.mu.TryLock() {
			return true
		}
		if m.owner.Load() != 0 {
			return false
		}
		runtime.Gosched()
	}
}

// own makes the calling goroutine, holding mu, m's owner at depth 1.
func (m *ReentrantMutex) own(me uintptr) {
	m.owner.Store(me)
	m.depth = 1
}

// TryUnlock undoes one Lock by the calling goroutine, releasing m when the
// depth reaches zero. It returns ErrNotLocked if nobody holds m and
// ErrNotOwner if another goroutine does, changing nothing.
func (m *ReentrantMutex) TryUnlock() error {
	switch m.owner.Load() {
	case goroutineID():
	case 0:
		return ErrNotLocked
	default:
		return ErrNotOwner
	}
	m.unlockHeld()
	return nil
}

// unlockHeld undoes one Lock; the calling goroutine must hold m.
func (m *ReentrantMutex) unlockHeld() {
	m.depth--
	if m.depth > 0 {
		return
	}
	m.owner.Store(0)
	m.mu.Unlock()
}

// Unlock is TryUnlock for callers that hold m, as sync.Locker requires. An
// Unlock by a goroutine that does not hold m is a programming error, and
// panics with ErrNotLocked or ErrNotOwner (sync.Mutex, in the same case,
// aborts the program). Use TryUnlock to get the error instead.
func (m *ReentrantMutex) Unlock() {
	if err := m.TryUnlock(); err != nil {
		panic(err)
	}
}

// Held reports whether the calling goroutine holds m.
func (m *ReentrantMutex) Held() bool { return m.owner.Load() == goroutineID() }

// ReentrantCounter is a [contend.Counter] guarded by a ReentrantMutex. Add
// and Load are linearizable, and the zero value is a zero counter. It is
// the Counter with the reentrant wrapper's cost on top (a goroutine-id read
// per call), which is what the benchmarks compare.
type ReentrantCounter struct {
	mu ReentrantMutex
	n  int64
}

// NewReentrantCounter returns a zero ReentrantCounter.
func NewReentrantCounter() *ReentrantCounter { return new(ReentrantCounter) }

// Add adds delta to the counter.
func (c *ReentrantCounter) Add(delta int64) {
	c.mu.Lock()
	c.n += delta
	c.mu.Unlock()
}

// Load returns the counter's value.
func (c *ReentrantCounter) Load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// AddAndLoad adds delta and returns the new value, by calling Add and Load
// while holding the lock: the reentrancy is what makes this composition
// atomic without a second, lock-free copy of each method.
func (c *ReentrantCounter) AddAndLoad(delta int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Add(delta)
	return c.Load()
}

// ReentrantBucket is a [contend.Bucket] guarded by a ReentrantMutex, with
// the same exact arithmetic and guarantees as Bucket, at Bucket's cost plus
// a goroutine-id read per request.
type ReentrantBucket struct {
	p   bucketcore.Params
	mu  ReentrantMutex
	tat uint64 // see package refill
}

// NewReentrantBucket returns a full ReentrantBucket, or a
// *contend.ConfigError.
func NewReentrantBucket(cfg contend.BucketConfig) (*ReentrantBucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	return &ReentrantBucket{p: p}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *ReentrantBucket) TryTake(n int64) bool {
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

// TryTakeAll takes every n in ns, all or none, holding the lock across the
// TryTake calls (which lock it again). It returns false, changing nothing,
// if any one of them cannot be granted.
func (b *ReentrantBucket) TryTakeAll(ns ...int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	saved := b.tat
	for _, n := range ns {
		if !b.TryTake(n) {
			b.tat = saved
			return false
		}
	}
	return true
}

// The contend.Limiter methods, written once in internal/bucketcore over
// the state and its lock; none is on TryTake's path.

// Capacity returns the most tokens the bucket holds.
func (b *ReentrantBucket) Capacity() int64 { return b.p.Capacity() }

// Rate returns the refill rate in tokens per second, as configured.
func (b *ReentrantBucket) Rate() float64 { return b.p.Rate() }

// Tokens returns the whole tokens available now, negative while bookings
// owe more than the bucket holds (see contend.Limiter).
func (b *ReentrantBucket) Tokens() int64 { return b.p.Tokens(b.cell()) }

// Delay returns how long from now until n tokens are due, without taking
// them: 0 if TryTake(n) would be granted now.
func (b *ReentrantBucket) Delay(n int64) (time.Duration, error) { return b.p.Delay(b.cell(), n) }

// Reserve books n tokens, due now or later; see contend.Limiter.
func (b *ReentrantBucket) Reserve(n int64) (contend.Reservation, error) {
	return b.p.Reserve(b.cell(), n)
}

// Wait books n tokens and blocks on a timer until they are due; see
// contend.Limiter.
func (b *ReentrantBucket) Wait(ctx context.Context, n int64) error { return b.p.Wait(ctx, b.cell(), n) }

func (b *ReentrantBucket) cell() bucketcore.Cell { return bucketcore.Locked(&b.mu, &b.tat) }

var _ contend.Limiter = (*ReentrantBucket)(nil)
