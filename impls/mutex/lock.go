package mutex

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// Lock is a contend.Lock on a sync.Mutex, with context support.
//
// Guarantees:
//   - Mutual exclusion: at most one live lease at a time (it is sync.Mutex).
//   - Tokens: each lease's token is one more than the previous holder's,
//     taken from an atomic counter incremented while holding, so tokens
//     strictly increase from one holder to the next.
//   - Not FIFO. Fairness is sync.Mutex's: a releasing goroutine, or a newly
//     arriving one, may take the lock ahead of a waiter, but a waiter queued
//     in mu.Lock for over 1 ms switches the mutex to starvation mode and is
//     handed the lock directly. Waiters with a cancellable context are not in
//     that queue (see below) and get no such protection: under heavy
//     contention they may be overtaken repeatedly.
//
// What a blocked Acquire does with ctx: a context that can never be done
// (ctx.Done() == nil, e.g. context.Background) waits in sync.Mutex.Lock,
// parked by the runtime. Any other context cannot use Lock, which cannot be
// interrupted, so the waiter parks on ctx.Done() and on a wake-up channel
// instead, and retries TryLock whenever a Release signals it. The
// alternative the lab rejected is polling TryLock with exponential sleeps:
// a sleep under 1 ms is rounded up to the netpoller's 1 ms granularity on
// an idle Linux machine, so a poller would see the lock free up to 1 ms
// late. Here a waiter is woken by the Release itself.
//
// Why no wake-up is lost: a waiter increments waiters and then calls TryLock
// once more before it parks. If that TryLock fails, the lock is held by
// some goroutine H, and H's Unlock comes after the waiter's increment in the
// order of atomic operations (Go's atomics, the mutex's included, are
// sequentially consistent). Release unlocks and then loads waiters, so H's
// Release sees the waiter and sends a wake-up into the 1-buffered channel,
// or finds one already there, which it leaves for some waiter. A woken
// waiter that loses the TryLock race to another goroutine G parks again
// (after another increment-then-TryLock), and G's Release wakes it in turn.
// So whenever a waiter is parked, either a wake-up is buffered or the lock
// is held by a goroutine whose Release will send one. A stale wake-up left by
// a waiter that gave up only costs the next waiter one spurious TryLock.
//
// A waiter whose ctx is done returns ctx.Err() (wrapped) holding nothing:
// it never held the mutex, because it only ever takes it with TryLock,
// which either takes it and returns a lease or takes nothing.
//
// Cost: Acquire and Release are sync.Mutex's Lock and Unlock, plus an
// atomic load of waiters in Release, an atomic increment for the token,
// and one 24-byte allocation for the lease (BenchmarkLock's B/op). A
// cancellable waiter costs an atomic increment and decrement and a channel
// receive per wake-up.
type Lock struct {
	mu      sync.Mutex
	tokens  atomic.Uint64 // acquisitions so far; incremented while holding
	waiters atomic.Int64  // cancellable Acquires parked, or about to park, on wake
	wake    chan struct{} // capacity 1: "the lock was released, try again"
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return &Lock{wake: make(chan struct{}, 1)} }

// Acquire blocks until the caller holds l, or until ctx is done; see Lock
// for how it waits. A ctx that is done already returns its error at once,
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
	if l.mu.TryLock() {
		return l.grant(), nil
	}
	for {
		l.waiters.Add(1)
		if l.mu.TryLock() { // after the increment: see Lock on lost wake-ups
			l.waiters.Add(-1)
			return l.grant(), nil
		}
		select {
		case <-done:
			l.waiters.Add(-1)
			return nil, fmt.Errorf("mutex: Acquire: %w", ctx.Err())
		case <-l.wake:
			l.waiters.Add(-1)
			if l.mu.TryLock() {
				return l.grant(), nil
			}
		}
	}
}

// TryAcquire takes l if it is free, or returns contend.ErrHeld (wrapped).
// It never waits; ctx is not consulted.
func (l *Lock) TryAcquire(context.Context) (contend.Lease, error) {
	if !l.mu.TryLock() {
		return nil, fmt.Errorf("mutex: TryAcquire: %w", contend.ErrHeld)
	}
	return l.grant(), nil
}

// grant is called holding mu.
func (l *Lock) grant() *locallease.Lease {
	return locallease.New((*lockReleaser)(l), 0, l.tokens.Add(1))
}

// unlock releases mu and wakes one cancellable waiter, if any.
func (l *Lock) unlock() {
	l.mu.Unlock()
	if l.waiters.Load() > 0 {
		select {
		case l.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// lockReleaser unlocks for a lease; only locallease calls it.
type lockReleaser Lock

func (r *lockReleaser) LeaseName() string { return "mutex" }

func (r *lockReleaser) ReleaseLease(uint64) { (*Lock)(r).unlock() }

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

// ReentrantLock is a contend.Lock on ReentrantMutex: the goroutine that
// holds it may Acquire (or TryAcquire) it again, and gets a new lease at
// once, one level deeper (Depth). The lock is released when every lease of
// the hold has been released, in any order.
//
// Guarantees:
//   - Mutual exclusion between goroutines; see ReentrantMutex for how the
//     owner is identified.
//   - Tokens: every lease, nested ones included, gets the next value of an
//     atomic counter incremented while holding, so tokens strictly increase.
//   - Not FIFO: fairness is sync.Mutex's, as for Lock, and cancellable
//     waiters wait as Lock's do (parked on ctx.Done() and a wake-up channel,
//     retrying TryLock on each Release), with the same proof that no wake-up
//     is lost.
//
// A lease must be released by the goroutine that acquired it, as with any
// reentrant lock: Release from another goroutine returns an error wrapping
// ErrNotOwner and changes nothing. A blocked Acquire whose ctx is done
// returns ctx.Err() (wrapped), holding nothing.
//
// Cost: Lock's, plus ReentrantMutex's goroutine-id read (see its doc), and
// a 32-byte lease; a nested Acquire touches only the owner word and the
// token counter.
type ReentrantLock struct {
	m       ReentrantMutex
	tokens  atomic.Uint64
	waiters atomic.Int64
	wake    chan struct{}
}

// NewReentrantLock returns an unlocked ReentrantLock.
func NewReentrantLock() *ReentrantLock { return &ReentrantLock{wake: make(chan struct{}, 1)} }

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
	if l.m.TryLock() { // succeeds at once for the holder
		return l.grant(), nil
	}
	for {
		l.waiters.Add(1)
		if l.m.TryLock() {
			l.waiters.Add(-1)
			return l.grant(), nil
		}
		select {
		case <-done:
			l.waiters.Add(-1)
			return nil, fmt.Errorf("mutex: reentrant Acquire: %w", ctx.Err())
		case <-l.wake:
			l.waiters.Add(-1)
			if l.m.TryLock() {
				return l.grant(), nil
			}
		}
	}
}

// TryAcquire takes l if it is free or held by the calling goroutine, or
// returns contend.ErrHeld (wrapped).
func (l *ReentrantLock) TryAcquire(context.Context) (contend.Lease, error) {
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
	if err := s.l.m.TryUnlock(); err != nil {
		return fmt.Errorf("mutex: reentrant Release: %w", err) // unreachable: Held was true
	}
	if last && s.l.waiters.Load() > 0 {
		select {
		case s.l.wake <- struct{}{}:
		default:
		}
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
