// Package spin is a test-and-test-and-set spinlock: the lock is one atomic
// word, taken by compare-and-swap, and a waiter never parks; it spins, with
// exponential backoff, and then yields its P with runtime.Gosched.
//
// # Waiting
//
// A waiter loads the word (test) and only tries the CAS (set) when it reads
// free, so waiters spin on a shared cache line instead of bouncing it with
// writes. After a failed attempt it waits an exponentially growing number
// of loads (2, 4, ... 64) for activeRounds rounds, then calls
// runtime.Gosched between attempts, so that on few Ps a preempted holder
// gets to run and release. It never parks: under oversubscription (more
// waiters than Ps, or GOMAXPROCS above the core count) waiters burn CPU the
// holder needs, which BenchmarkLock shows.
//
// A blocked Acquire checks ctx.Done() every ctxEvery rounds (one Gosched
// each), and once ctx is done returns ctx.Err() (wrapped) holding nothing.
// When its CAS lands it takes the word as taking, checks ctx once more, and
// gives the word back if ctx is done, so a ctx that ended before the
// release it took over from always fails (go.dev/issue/63615). A ctx whose
// Done() is nil is never checked.
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

// The lock word's states. An Acquire with a cancellable ctx takes the word
// as taking, checks ctx, and then either commits it to held or gives it
// back; everyone else goes from free to held in one CAS.
const (
	free   = 0
	taking = 1 // taken by an Acquire that has not yet checked its ctx
	held   = 2 // held by a lease, or by an Acquire that will return one
)

// Lock is a test-and-test-and-set spinlock: a [contend.Lock] whose waiters
// spin and yield but never park. The zero value is an unlocked Lock.
//
//   - Mutual exclusion: the lock is one atomic word, taken only by a
//     CompareAndSwap from free, and given back by the one lease (or
//     giving-up Acquire) that took it.
//   - Fencing tokens strictly increase from one holder to the next.
//   - TryAcquire returns ErrHeld only on seeing the word held; while an
//     Acquire holds it for the few instructions of checking its ctx, it
//     yields and looks again.
//   - No fairness at all, not FIFO: whichever waiter's CAS lands first after
//     a release wins, and a waiter can starve. A releasing goroutine that
//     acquires again at once usually wins (its cache holds the line).
//
// Cost: uncontended, one CAS to acquire, one store to release, an atomic
// increment for the token and one 24-byte allocation for the lease; a
// cancellable Acquire adds a non-blocking receive on ctx.Done() and a
// store. Waiters burn CPU; see the package documentation.
type Lock struct {
	word   atomic.Uint32 // free, taking or held
	tokens atomic.Uint64
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return new(Lock) }

// Acquire spins until the caller holds l, or until ctx is done; see Lock.
// A ctx that is done already returns its error at once, even if l is free.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	done := ctx.Done()
	take := uint32(held)
	if done != nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("spin: Acquire: %w", err)
		}
		take = taking
	}
	backoff := 2
	for round := 1; ; round++ {
		if l.word.Load() == free && l.word.CompareAndSwap(free, take) {
			if take == held {
				return l.grant(), nil
			}
			if locallease.Done(done) { // it may have ended before the release we took over from
				l.word.Store(free)
				return nil, fmt.Errorf("spin: Acquire: %w", ctx.Err())
			}
			l.word.Store(held)
			return l.grant(), nil
		}
		if round <= activeRounds {
			// Spin on loads, leaving early when the word reads free.
			for i := 0; i < backoff && l.word.Load() != free; i++ {
			}
			backoff = min(2*backoff, maxBackoff)
		} else {
			runtime.Gosched()
		}
		if done != nil && round%ctxEvery == 0 && locallease.Done(done) {
			return nil, fmt.Errorf("spin: Acquire: %w", ctx.Err())
		}
	}
}

// TryAcquire makes one attempt to take l, and returns contend.ErrHeld
// (wrapped) if it is held; a ctx done already returns its error.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spin: TryAcquire: %w", err)
	}
	for {
		switch l.word.Load() {
		case held:
			return nil, fmt.Errorf("spin: TryAcquire: %w", contend.ErrHeld)
		case free:
			if l.word.CompareAndSwap(free, held) {
				return l.grant(), nil
			}
		default: // taking: an Acquire is a few instructions from held or free
			runtime.Gosched()
		}
	}
}

func (l *Lock) grant() *locallease.Lease {
	return locallease.New((*releaser)(l), 0, l.tokens.Add(1))
}

// releaser frees the lock for a lease; only locallease calls it.
type releaser Lock

func (r *releaser) LeaseName() string { return "spin" }

func (r *releaser) ReleaseLease(uint64) { r.word.Store(free) }
