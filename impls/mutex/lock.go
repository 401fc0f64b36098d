package mutex

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// Lock is a [contend.Lock] on a sync.Mutex, with context support. The zero
// value is an unlocked Lock; it must not be copied after first use.
//
//   - Mutual exclusion: at most one live lease at a time (it is sync.Mutex).
//   - Fencing tokens: each lease's token is one more than the previous
//     holder's, so tokens strictly increase from one holder to the next.
//   - TryAcquire returns ErrHeld only after seeing the lock held: by a
//     lease, or by an Acquire that has taken it for good.
//   - Not FIFO: fairness is sync.Mutex's for a context that can never be
//     done; a waiter with a cancellable context parks on its own and may be
//     overtaken repeatedly under heavy contention (see the package
//     documentation for how each waits).
//
// Cost: Acquire and Release are sync.Mutex's Lock and Unlock, plus an
// atomic add each (the token and the held bit), an atomic load in Release,
// a non-blocking receive on ctx.Done() for a cancellable Acquire, and one
// 24-byte allocation for the lease (BenchmarkLock's B/op). A cancellable
// waiter costs an atomic increment and decrement and a channel receive per
// wake-up.
type Lock struct {
	mu sync.Mutex
	// state is the acquisitions so far (the last token) times two, plus a
	// held bit. The bit is set, with the count's increment in one atomic
	// add, by whoever takes mu for a lease once it will return the lease,
	// and cleared by the lease's Release before it unlocks mu. It is what
	// TryAcquire and a parking waiter read as "held", never a failed
	// TryLock.
	state atomic.Uint64
	wake  wakeup
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return new(Lock) }

// Acquire blocks until the caller holds l, or until ctx is done; see the
// package documentation for how it waits. A ctx that is done already returns its error at once,
// even if l is free.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	done := ctx.Done()
	if done == nil {
		l.mu.Lock()
		return l.grant(), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mutex: Acquire: %w", err)
	}
	if !l.wake.wait(done, l) {
		return nil, fmt.Errorf("mutex: Acquire: %w", ctx.Err())
	}
	if locallease.Done(done) { // it may have ended before the Release we took over from
		l.giveBack()
		return nil, fmt.Errorf("mutex: Acquire: %w", ctx.Err())
	}
	return l.grant(), nil
}

// TryAcquire takes l if it is free, or returns contend.ErrHeld (wrapped)
// once it has seen l held (see Lock); a ctx done already returns its
// error. It never waits for a holder.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mutex: TryAcquire: %w", err)
	}
	if !l.take() {
		return nil, fmt.Errorf("mutex: TryAcquire: %w", contend.ErrHeld)
	}
	return l.grant(), nil
}

// take takes mu and reports true, or reports false once it has seen held
// set. While mu is neither free nor held (taken by an Acquire that has not
// set held yet or is giving it back, released by a lease between its two
// steps, or handed by sync.Mutex to a waiter in Lock that has not run yet)
// it yields its P and tries again: each of those ends in a few
// instructions of a goroutine that is running or runnable, never after a
// critical section.
func (l *Lock) take() bool {
	for {
		if l.mu.TryLock() {
			return true
		}
		if l.state.Load()&1 != 0 {
			return false
		}
		runtime.Gosched()
	}
}

// grant is called holding mu, by a caller that will return the lease. The
// held bit is clear, so adding 3 sets it and adds one to the count.
func (l *Lock) grant() *locallease.Lease {
	return locallease.New((*lockReleaser)(l), 0, l.state.Add(3)>>1)
}

// unlock clears the held bit and gives mu back.
func (l *Lock) unlock() {
	l.state.Add(^uint64(0))
	l.giveBack()
}

// giveBack releases mu, taken but not marked held (by a giving-up Acquire)
// or no longer marked, and wakes one cancellable waiter, if any.
func (l *Lock) giveBack() {
	l.mu.Unlock()
	l.wake.signal()
}

// lockReleaser unlocks for a lease; only locallease calls it.
type lockReleaser Lock

func (r *lockReleaser) LeaseName() string { return "mutex" }

func (r *lockReleaser) ReleaseLease(uint64) { (*Lock)(r).unlock() }

// taker is a lock a cancellable waiter can take: take takes it and reports
// true, or reports false once it has seen the lock held by a holder whose
// release will signal wakeup.
type taker interface{ take() bool }

// wakeup parks the cancellable waiters of Lock and ReentrantLock until a
// release signals them. Its zero value is ready to use: the channel is
// made by the first waiter that parks.
//
// Why no wake-up is lost: a waiter increments waiters and then tries once
// more before it parks, and parks only if that try has seen the lock held
// by a holder H (take's false). H's release clears the held mark, unlocks,
// and then loads waiters. Go's atomics are sequentially consistent: the
// waiter saw H's mark, so H's clearing of it, and the load after it, come
// after the waiter's increment, and the load sees the waiter: H sends a
// wake-up into the 1-buffered channel, or finds one already there, which
// it leaves for some waiter. A woken waiter that loses the race to another
// goroutine G parks again (after another increment-then-try), and G's
// release wakes it in turn. So whenever a waiter is parked, either a
// wake-up is buffered or the lock is held by a goroutine whose release
// will send one. A stale wake-up left by a waiter that gave up only costs
// the next waiter one spurious try.
type wakeup struct {
	waiters atomic.Int64                  // waiters parked, or about to park
	ch      atomic.Pointer[chan struct{}] // capacity 1: "the lock was released, try again"
}

// channel returns the wake-up channel, making it on first use.
func (w *wakeup) channel() chan struct{} {
	if c := w.ch.Load(); c != nil {
		return *c
	}
	c := make(chan struct{}, 1)
	if w.ch.CompareAndSwap(nil, &c) {
		return c
	}
	return *w.ch.Load()
}

// wait takes l for a cancellable waiter: at once if it can, else parked
// until a release signals it, over and over, until it has taken l (true)
// or done is closed (false, holding nothing).
func (w *wakeup) wait(done <-chan struct{}, l taker) bool {
	if l.take() {
		return true
	}
	for {
		w.waiters.Add(1)
		if l.take() { // after the increment: see wakeup on lost wake-ups
			w.waiters.Add(-1)
			return true
		}
		select {
		case <-done:
			w.waiters.Add(-1)
			return false
		case <-w.channel():
			w.waiters.Add(-1)
			if l.take() {
				return true
			}
		}
	}
}

// signal wakes one parked waiter, if any. A release calls it after
// unlocking.
func (w *wakeup) signal() {
	if w.waiters.Load() > 0 {
		select {
		case w.channel() <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// errBadTTL is returned (wrapped) by a lease's Extend when ttl is not
// positive.
var errBadTTL = errors.New("ttl must be positive")

// extend is Extend for a lease that never expires: an error for ttl <= 0,
// ErrNotHeld once released, nil otherwise (the lease stays without expiry).
func extend(pkg string, released *atomic.Bool, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%s: Extend(%v): %w", pkg, ttl, errBadTTL)
	}
	if released.Load() {
		return fmt.Errorf("%s: Extend: %w", pkg, contend.ErrNotHeld)
	}
	return nil
}

// ReentrantLock is a [contend.Lock] on [ReentrantMutex]: the goroutine that
// holds it may Acquire (or TryAcquire) it again, and gets a new lease at
// once, one level deeper. The lock is released when every lease of the
// hold has been released, in any order, each by the goroutine that
// acquired it (from another, Release returns an error wrapping ErrNotOwner
// and changes nothing). The zero value is an unlocked ReentrantLock; it
// must not be copied after first use.
//
// Guarantees are [Lock]'s: mutual exclusion between goroutines, fencing
// tokens that strictly increase (nested leases included), TryAcquire's
// ErrHeld only after seeing another goroutine own the lock, sync.Mutex's
// fairness, and cancellable waiters that wait and check ctx as Lock's do.
//
// Cost: Lock's, plus ReentrantMutex's goroutine-id read, and a 32-byte
// lease; a nested Acquire touches only the owner word and the token
// counter.
type ReentrantLock struct {
	m      ReentrantMutex
	tokens atomic.Uint64
	wake   wakeup
}

// NewReentrantLock returns an unlocked ReentrantLock.
func NewReentrantLock() *ReentrantLock { return new(ReentrantLock) }

// Acquire returns at once with a deeper lease if the calling goroutine holds
// l; otherwise it blocks until it holds l, or until ctx is done. A ctx that
// is done already returns its error at once, even for a nested Acquire.
func (l *ReentrantLock) Acquire(ctx context.Context) (contend.Lease, error) {
	done := ctx.Done()
	if done == nil {
		l.m.Lock()
		return l.grant(), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mutex: reentrant Acquire: %w", err)
	}
	me := goroutineID()
	if l.m.owner.Load() == me {
		l.m.depth++
		return l.grant(), nil
	}
	if !l.wake.wait(done, l) {
		return nil, fmt.Errorf("mutex: reentrant Acquire: %w", ctx.Err())
	}
	// Holding m.mu, not yet its owner: nobody sees it held.
	if locallease.Done(done) { // it may have ended before the Release we took over from
		l.m.mu.Unlock()
		l.wake.signal()
		return nil, fmt.Errorf("mutex: reentrant Acquire: %w", ctx.Err())
	}
	l.m.own(me)
	return l.grant(), nil
}

// take takes m's inner mutex, or reports false once another goroutine owns
// m; see ReentrantMutex.takeInner.
func (l *ReentrantLock) take() bool { return l.m.takeInner() }

// TryAcquire takes l if it is free or held by the calling goroutine, or
// returns contend.ErrHeld (wrapped) once it has seen another goroutine own
// it; a ctx done already returns its error.
func (l *ReentrantLock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mutex: reentrant TryAcquire: %w", err)
	}
	if !l.m.TryLock() {
		return nil, fmt.Errorf("mutex: reentrant TryAcquire: %w", contend.ErrHeld)
	}
	return l.grant(), nil
}

// grant is called holding m, at the depth just reached.
func (l *ReentrantLock) grant() *ReentrantLease {
	return &ReentrantLease{l: l, token: l.tokens.Add(1), depth: int(l.m.depth)}
}

// ReentrantLease is a lease of a ReentrantLock. It implements contend.Lease.
type ReentrantLease struct {
	l        *ReentrantLock
	token    uint64
	depth    int
	released atomic.Bool
}

// Depth returns how deep the hold was when this lease was granted: 1 for
// the acquisition that took the lock, 2 for a nested one, and so on.
func (s *ReentrantLease) Depth() int { return s.depth }

// Token returns the lease's fencing token.
func (s *ReentrantLease) Token() uint64 { return s.token }

// Release undoes this lease's level of the hold; the lock is free once
// every lease of the hold is released. A second Release returns
// contend.ErrNotHeld (wrapped); a Release from a goroutine other than the
// holder returns ErrNotOwner (wrapped) and leaves the lease held.
func (s *ReentrantLease) Release(context.Context) error {
	if s.released.Load() {
		return fmt.Errorf("mutex: reentrant Release: %w", contend.ErrNotHeld)
	}
	if !s.l.m.Held() {
		return fmt.Errorf("mutex: reentrant Release: %w", ErrNotOwner)
	}
	// Only the holding goroutine gets here, so the Load above and this CAS
	// cannot race with another Release of s that succeeds.
	if !s.released.CompareAndSwap(false, true) {
		return fmt.Errorf("mutex: reentrant Release: %w", contend.ErrNotHeld)
	}
	last := s.l.m.depth == 1
	s.l.m.unlockHeld() // Held was true
	if last {
		s.l.wake.signal()
	}
	return nil
}

// Extend returns an error for ttl <= 0 and contend.ErrNotHeld once
// released; otherwise nil: the lease never expires.
func (s *ReentrantLease) Extend(_ context.Context, ttl time.Duration) error {
	return extend("mutex: reentrant", &s.released, ttl)
}

// TTL returns (0, false): the lease never expires.
func (s *ReentrantLease) TTL() (time.Duration, bool) { return 0, false }
