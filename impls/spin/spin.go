// Package spin is a test-and-test-and-set spinlock: the lock is one atomic
// word, taken by compare-and-swap, and a waiter never parks; it spins, with
// exponential backoff, and then yields its P with runtime.Gosched.
package spin

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

const (
	// activeRounds is how many backoff rounds a waiter spins on the word
	// before it starts yielding its P with runtime.Gosched.
	activeRounds = 4
	// maxBackoff caps the loads of one active round (2, 4, 8, ... up to it).
	maxBackoff = 64
	// ctxEvery is how many rounds pass between two checks of ctx.Done().
	ctxEvery = 8
)

// Lock is a test-and-test-and-set spinlock.
//
// Guarantees:
//   - Mutual exclusion: the lock is one atomic.Bool, taken only by a
//     CompareAndSwap from false to true, and given back by a Store of false
//     by the one lease that took it.
//   - Tokens: the next value of an atomic counter incremented while holding,
//     so they strictly increase from one holder to the next.
//   - No fairness at all, not FIFO: whichever waiter's CAS lands first after
//     a release wins, and a waiter can starve. A releasing goroutine that
//     acquires again at once usually wins (its cache holds the line).
//
// How it waits: a waiter loads the word (test) and only tries the CAS (set)
// when it reads false, so waiters spin on a shared cache line instead of
// bouncing it with writes. After a failed attempt it waits an exponentially
// growing number of loads (2, 4, ... 64) for activeRounds rounds, then calls
// runtime.Gosched between attempts, so that on few Ps a preempted holder
// gets to run and release. It never parks: under oversubscription (more
// waiters than Ps, or GOMAXPROCS above the core count) waiters burn CPU the
// holder needs, which is what the benchmarks show.
//
// What a blocked Acquire does with ctx: it checks ctx.Done() every ctxEvery
// rounds (every few µs at most, one Gosched each), and once ctx is done
// returns ctx.Err() (wrapped) without ever having set the word: it holds
// nothing. A ctx whose Done() is nil is never checked.
//
// Cost: uncontended, one CAS to acquire, one store to release, an atomic
// increment for the token and one 24-byte allocation for the lease.
type Lock struct {
	held   atomic.Bool
	tokens atomic.Uint64
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return new(Lock) }

// Acquire spins until the caller holds l, or until ctx is done; see Lock.
// A ctx that is done already returns its error at once, even if l is free.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	done := ctx.Done()
	if done != nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("spin: Acquire: %w", err)
		}
	}
	backoff := 2
	for round := 1; ; round++ {
		if !l.held.Load() && l.held.CompareAndSwap(false, true) {
			return locallease.New((*releaser)(l), 0, l.tokens.Add(1)), nil
		}
		if round <= activeRounds {
			// Spin on loads, leaving early when the word reads free.
			for i := 0; i < backoff && l.held.Load(); i++ {
			}
			backoff = min(2*backoff, maxBackoff)
		} else {
			runtime.Gosched()
		}
		if done != nil && round%ctxEvery == 0 {
			select {
			case <-done:
				return nil, fmt.Errorf("spin: Acquire: %w", ctx.Err())
			default:
			}
		}
	}
}

// TryAcquire makes one attempt to take l, and returns contend.ErrHeld
// (wrapped) if it is held.
func (l *Lock) TryAcquire(context.Context) (contend.Lease, error) {
	if l.held.Load() || !l.held.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("spin: TryAcquire: %w", contend.ErrHeld)
	}
	return locallease.New((*releaser)(l), 0, l.tokens.Add(1)), nil
}

// releaser frees the lock for a lease; only locallease calls it.
type releaser Lock

func (r *releaser) LeaseName() string { return "spin" }

func (r *releaser) ReleaseLease(uint64) { r.held.Store(false) }
