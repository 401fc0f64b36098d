// Package ticket is a ticket lock: a fair, FIFO spinlock. An acquirer takes
// the next ticket from one counter and waits until a second counter, the
// ticket now served, reaches it; a release serves the next ticket.
//
// # Waiting
//
// A waiter spins on loads of the ticket now served, proportionally to how
// many tickets are ahead of it, then calls runtime.Gosched. It never
// parks. The price of FIFO is convoys: the lock can go only to the one
// goroutine next in line, so if that goroutine is not running (more
// waiters than Ps, or a preempted waiter), everyone waits for the scheduler
// to run it, even when other waiters are on a CPU. Throughput under
// oversubscription is far below an unfair lock's (BenchmarkLock shows by
// how much).
//
// # Cancellation
//
// A waiter that gives up still owns a ticket, and if nobody served past it
// the lock would stall forever at that ticket. So a waiter whose ctx is
// done abandons its ticket (Lock.abandon has the protocol and why no
// abandoned ticket is ever waited for), and a release skips the abandoned
// tickets it serves.
//
// A ctx is checked between spins, at every Gosched round, and once more
// when the ticket is served: a served waiter whose ctx is done serves the
// next ticket and fails, so a ctx that ended before the release that served
// it always fails (go.dev/issue/63615). A ctx whose Done() is nil is never
// checked. Acquire with a ctx that is done already returns at once without
// drawing a ticket.
//
// A waiter keeps its ticket until it next looks, even once its ctx has
// ended. If the lock is released to it meanwhile, it is served with no
// lease live or to come, and TryAcquire, which succeeds only when every
// drawn ticket has been released, reports ErrHeld until that waiter serves
// the next ticket (at its next look; it never parks): the hand-off
// deviation that contend.Lock.TryAcquire allows.
package ticket

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

const (
	// spinPerAhead is how many loads of serving a waiter spins for each
	// ticket ahead of it before it yields with runtime.Gosched.
	spinPerAhead = 16
	// maxSpin caps those loads: a waiter far back in the queue yields at once.
	maxSpin = 256
)

// Lock is a ticket lock: a [contend.Lock] that serves waiters in the order
// they drew their tickets, so it is fair and starvation-free, and whose
// TryAcquire succeeds only when nobody holds or waits, so it never jumps
// the queue either. Fencing tokens strictly increase from one holder to the
// next. The zero value is an unlocked Lock.
//
// Waiters spin and yield but never park, so under oversubscription the lock
// convoys behind whichever waiter is next; and a waiter whose ctx has ended
// holds up the queue until it notices (see the package documentation).
//
// Cost, uncontended: one atomic increment to draw a ticket, one load to see
// it served, one store and one load to release, an atomic increment for the
// token and one 32-byte allocation for the lease. A cancelled waiter costs
// a mutex and a map entry, and every release while an abandonment is
// pending takes the mutex.
type Lock struct {
	next    atomic.Uint64 // the next ticket to draw
	serving atomic.Uint64 // the ticket that holds, or may take, the lock
	tokens  atomic.Uint64

	abandoning atomic.Int64 // abandoned tickets not yet skipped, and abandonments under way
	abandonMu  sync.Mutex
	abandoned  map[uint64]struct{} // tickets whose waiters gave up; guarded by abandonMu
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return new(Lock) }

// Acquire draws a ticket and waits for it to be served, or for ctx to be
// done; see the package documentation for how it waits and how a
// cancelled waiter gives its ticket up.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	done := ctx.Done()
	if done != nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ticket: Acquire: %w", err)
		}
	}
	t := l.next.Add(1) - 1
	for {
		s := l.serving.Load()
		if s == t {
			return l.served(ctx, done, t)
		}
		for i := min((t-s)*spinPerAhead, maxSpin); i > 0 && l.serving.Load() != t; i-- {
		}
		if l.serving.Load() == t {
			return l.served(ctx, done, t)
		}
		runtime.Gosched()
		if done != nil {
			select {
			case <-done:
				l.abandon(t)
				return nil, fmt.Errorf("ticket: Acquire: %w", ctx.Err())
			default:
			}
		}
	}
}

// served returns the lease of ticket t, now served, unless ctx is done:
// then it may have ended before the release that served t
// (go.dev/issue/63615), so it serves the next ticket and fails.
func (l *Lock) served(ctx context.Context, done <-chan struct{}, t uint64) (contend.Lease, error) {
	if locallease.Done(done) {
		l.unlock(t)
		return nil, fmt.Errorf("ticket: Acquire: %w", ctx.Err())
	}
	return l.grant(), nil
}

// abandon gives up ticket t, whose waiter's ctx is done. Under abandonMu
// it increments abandoning, and then loads serving. If serving has reached
// t, the lock is the waiter's already: it releases it at once (serving the
// next ticket). Otherwise it records t in the abandoned set, which unlock
// skips.
//
// Why no abandoned ticket is ever waited for: let a release store serving
// = t. The waiter's increment of abandoning comes before its load of
// serving, and the release's store comes before its load of abandoning;
// Go's atomics are sequentially consistent, so either the waiter's load
// sees serving = t (and the waiter releases the lock itself), or it sees an
// earlier value, in which case its increment precedes the store, the
// release sees abandoning > 0, and takes abandonMu, which it gets only
// after the waiter has recorded t: the release finds t and serves t+1. The
// skipping loop runs under abandonMu, so no ticket can be abandoned between
// its check and its store.
func (l *Lock) abandon(t uint64) {
	l.abandonMu.Lock()
	l.abandoning.Add(1)
	if l.serving.Load() == t {
		// Served meanwhile: the lock is ours. Give it back.
		l.abandoning.Add(-1)
		l.abandonMu.Unlock()
		l.unlock(t)
		return
	}
	if l.abandoned == nil {
		l.abandoned = make(map[uint64]struct{}) // the zero Lock's first abandonment
	}
	l.abandoned[t] = struct{}{}
	l.abandonMu.Unlock()
}

// TryAcquire takes l only if nobody holds it or waits for it, or returns
// contend.ErrHeld (wrapped); a ctx done already returns its error. A
// waiter whose ctx has ended keeps its ticket until it notices, so
// TryAcquire may fail while no lease is live; see the package
// documentation.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ticket: TryAcquire: %w", err)
	}
	s := l.serving.Load()
	// next == serving: every ticket drawn has been served and released, so
	// the lock is free; drawing ticket s makes it ours. serving cannot pass
	// next, so if next is still s, serving still is too.
	if !l.next.CompareAndSwap(s, s+1) {
		return nil, fmt.Errorf("ticket: TryAcquire: %w", contend.ErrHeld)
	}
	return l.grant(), nil
}

func (l *Lock) grant() *locallease.Lease {
	return locallease.New((*releaser)(l), l.serving.Load(), l.tokens.Add(1))
}

// unlock serves the ticket after t, the holder's, skipping abandoned ones
// (see abandon for why none is missed).
func (l *Lock) unlock(t uint64) {
	l.serving.Store(t + 1)
	if l.abandoning.Load() == 0 {
		return
	}
	l.abandonMu.Lock()
	s := t + 1
	for {
		if _, gone := l.abandoned[s]; !gone {
			break
		}
		delete(l.abandoned, s)
		l.abandoning.Add(-1)
		s++
	}
	if s != t+1 {
		l.serving.Store(s)
	}
	l.abandonMu.Unlock()
}

// releaser gives back a lease's ticket; only locallease calls it.
type releaser Lock

func (r *releaser) LeaseName() string { return "ticket" }

func (r *releaser) ReleaseLease(ticket uint64) { (*Lock)(r).unlock(ticket) }
