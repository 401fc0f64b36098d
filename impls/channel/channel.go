// Package channel synchronises with Go channels alone: a lock is a channel
// of capacity 1 holding a value while the lock is held, and a semaphore of
// n permits is a channel of capacity n holding one value per permit taken.
// Waiting is the runtime's channel send queue, so it honours a context by
// selecting on ctx.Done() beside the send.
package channel

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// Lock is a contend.Lock on a channel of capacity 1: Acquire sends into it,
// Release receives from it.
//
// Guarantees:
//   - Mutual exclusion: the buffer holds at most one value, and only the
//     lease that sent it takes it out.
//   - FIFO among waiters blocked in Acquire: while the buffer is full,
//     senders queue in the channel in arrival order, and a receive (a
//     Release) moves the first queued sender's value straight into the
//     buffer, so the lock passes to the longest waiter and no newcomer can
//     slip in between. A goroutine arriving while the lock is free takes it
//     at once. TryAcquire never jumps the queue: the buffer is full whenever
//     anyone waits.
//   - Tokens: the next value of an atomic counter incremented while holding,
//     strictly increasing from one holder to the next.
//
// What a blocked Acquire does with ctx: it parks in a select on the send and
// on ctx.Done(). If ctx is done first, the runtime removes it from the
// send queue and it returns ctx.Err() (wrapped), having sent nothing: it
// holds nothing. If both become ready at once the select may pick either,
// so a waiter whose send went through checks ctx once more and, if it is
// done, receives its value back (handing the lock to the next sender) and
// fails: a ctx that ended before the Release it took over from always
// fails (go.dev/issue/63615). Until it does, the buffer is full with no
// lease live or to come, and TryAcquire reports ErrHeld: the hand-off
// deviation of contend.Lock.TryAcquire.
//
// Cost: Acquire and Release are one channel operation each, and each takes
// the channel's internal lock; every hand-off to a parked waiter is a
// goroutine wake-up. Plus a non-blocking receive on ctx.Done(), an atomic
// increment for the token and one 24-byte allocation for the lease.
//
// A Lock must be made by NewLock: its zero value has no channel, and its
// methods return contend.ErrNotConstructed (wrapped).
type Lock struct {
	ch     chan struct{}
	tokens atomic.Uint64
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return &Lock{ch: make(chan struct{}, 1)} }

// Acquire blocks until the caller holds l, or until ctx is done; see Lock.
// A ctx that is done already returns its error at once, even if l is free.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if l.ch == nil {
		return nil, fmt.Errorf("channel: Acquire: %w", contend.ErrNotConstructed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: Acquire: %w", err)
	}
	done := ctx.Done()
	select {
	case l.ch <- struct{}{}:
		if locallease.Done(done) { // it may have ended before the Release we took over from
			<-l.ch
			return nil, fmt.Errorf("channel: Acquire: %w", ctx.Err())
		}
		return locallease.New((*lockReleaser)(l), 0, l.tokens.Add(1)), nil
	case <-done:
		return nil, fmt.Errorf("channel: Acquire: %w", ctx.Err())
	}
}

// TryAcquire takes l if it is free, or returns contend.ErrHeld (wrapped);
// a ctx done already returns its error.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if l.ch == nil {
		return nil, fmt.Errorf("channel: TryAcquire: %w", contend.ErrNotConstructed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: TryAcquire: %w", err)
	}
	select {
	case l.ch <- struct{}{}:
		return locallease.New((*lockReleaser)(l), 0, l.tokens.Add(1)), nil
	default:
		return nil, fmt.Errorf("channel: TryAcquire: %w", contend.ErrHeld)
	}
}

// lockReleaser frees the lock for a lease; only locallease calls it.
type lockReleaser Lock

// ReleaseLease never blocks: the lease's value is in the buffer.
func (r *lockReleaser) LeaseName() string { return "channel" }

func (r *lockReleaser) ReleaseLease(uint64) { <-r.ch }

// Semaphore is a contend.Semaphore on a channel of capacity Capacity: each
// permit taken is one value sent into it, each permit given back one value
// received. Its zero value has no permits (every request is a
// *contend.PermitError): use NewSemaphore.
//
// A channel moves one value at a time, so Acquire(n) for n > 1 must take its
// permits one by one, and two acquirers collecting at once can deadlock:
// with 4 permits, two Acquire(3) that take 2 each wait forever for a third
// that the other holds. Semaphore prevents it by serialising multi-permit
// acquirers on a second channel of capacity 1 (a ctx-aware mutex): only one
// goroutine collects several permits at a time. It holds the permits it has
// collected while it waits for the rest, but every other holder holds
// permits it already has in full (a single permit, or a completed
// collection), so it will release them, and the collector, queued FIFO in
// the channel, gets each released permit in turn: it finishes.
//
// Guarantees:
//   - Never more than Capacity permits held: the buffer holds at most
//     Capacity values.
//   - Acquire(n) is all or nothing to the caller: a collector whose ctx is
//     done gives back the permits it has collected and returns ctx.Err()
//     (wrapped), holding nothing. An acquirer that has all its permits
//     checks ctx once more and gives them back if it is done, so a ctx
//     that ended before the Release it took a permit from always fails.
//   - Single-permit waiters are FIFO (the channel's send queue, as for
//     Lock). A multi-permit acquirer queues FIFO behind the other collector,
//     then collects permits one at a time in the send queue, interleaved
//     with single-permit waiters: it is not starved, but it is not served
//     as one request in arrival order either.
//   - Tokens: the next value of an atomic counter incremented once the
//     permits are held; every lease's token is greater than that of every
//     lease granted before it.
//
// Costs: Acquire(1) and its Release are one channel operation each, as for
// Lock. Acquire(n) is n channel operations plus the collector channel's
// two; while it collects, the permits it holds idle are lost to everyone,
// and multi-permit acquires never overlap one another even when there would
// be permits enough for both. TryAcquire(n > 1) briefly takes permits and
// gives them back when there are not n free, so a concurrent TryAcquire may
// fail during that window although the permits are free again after it.
type Semaphore struct {
	ch        chan struct{} // one value per permit held
	collector chan struct{} // capacity 1: held by the multi-permit acquirer collecting
	tokens    atomic.Uint64
}

// NewSemaphore returns a Semaphore of capacity permits, all free, or a
// *contend.ConfigError if capacity <= 0 (or exceeds math.MaxInt). The
// buffer's values are of size zero, so a large capacity costs no memory.
func NewSemaphore(capacity int64) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, math.MaxInt); err != nil {
		return nil, err
	}
	return &Semaphore{ch: make(chan struct{}, capacity), collector: make(chan struct{}, 1)}, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return int64(cap(s.ch)) }

// Acquire takes n permits, blocking until it has them all, or until ctx is
// done; see Semaphore for how multi-permit acquires avoid deadlock. n
// outside [1, Capacity] is a *contend.PermitError, at once.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.check(n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: Acquire: %w", err)
	}
	done := ctx.Done()
	if n == 1 {
		select {
		case s.ch <- struct{}{}:
			return s.granted(ctx, done, 1)
		case <-done:
			return nil, fmt.Errorf("channel: Acquire: %w", ctx.Err())
		}
	}
	select {
	case s.collector <- struct{}{}:
	case <-done:
		return nil, fmt.Errorf("channel: Acquire: %w", ctx.Err())
	}
	defer func() { <-s.collector }()
	for got := int64(0); got < n; got++ {
		select {
		case s.ch <- struct{}{}:
		case <-done:
			s.giveBack(got)
			return nil, fmt.Errorf("channel: Acquire(%d) with %d collected: %w", n, got, ctx.Err())
		}
	}
	return s.granted(ctx, done, n)
}

// granted returns the lease of the n permits the caller has just taken,
// unless ctx is done. When a send and ctx.Done() are ready at once, select
// picks either, so ctx may have ended before the Release whose permit the
// send took (go.dev/issue/63615): then, as x/sync does, it fails and gives
// the permits on to the next waiter.
func (s *Semaphore) granted(ctx context.Context, done <-chan struct{}, n int64) (contend.Lease, error) {
	if locallease.Done(done) {
		s.giveBack(n)
		return nil, fmt.Errorf("channel: Acquire(%d): %w", n, ctx.Err())
	}
	return s.grant(n), nil
}

// TryAcquire takes n permits if they are free now, or returns
// contend.ErrHeld (wrapped); n outside [1, Capacity] is a
// *contend.PermitError, and a ctx done already returns its error. It also
// returns ErrHeld when another multi-permit acquirer is collecting.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.check(n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: TryAcquire(%d): %w", n, err)
	}
	if n == 1 {
		select {
		case s.ch <- struct{}{}:
			return s.grant(1), nil
		default:
			return nil, fmt.Errorf("channel: TryAcquire: %w", contend.ErrHeld)
		}
	}
	select {
	case s.collector <- struct{}{}:
	default:
		return nil, fmt.Errorf("channel: TryAcquire(%d): another acquirer is collecting: %w", n, contend.ErrHeld)
	}
	defer func() { <-s.collector }()
	if int64(cap(s.ch)-len(s.ch)) < n {
		return nil, fmt.Errorf("channel: TryAcquire(%d): %w", n, contend.ErrHeld)
	}
	for got := int64(0); got < n; got++ {
		select {
		case s.ch <- struct{}{}:
		default: // a single-permit acquirer took one since len
			s.giveBack(got)
			return nil, fmt.Errorf("channel: TryAcquire(%d): %w", n, contend.ErrHeld)
		}
	}
	return s.grant(n), nil
}

func (s *Semaphore) check(n int64) error {
	if n <= 0 || n > s.Capacity() {
		return &contend.PermitError{N: n, Capacity: s.Capacity()}
	}
	return nil
}

func (s *Semaphore) grant(n int64) *locallease.Lease {
	return locallease.New((*semReleaser)(s), uint64(n), s.tokens.Add(1))
}

// giveBack releases n permits the caller holds. A receive never blocks: the
// buffer holds at least the caller's n values.
func (s *Semaphore) giveBack(n int64) {
	for range n {
		<-s.ch
	}
}

// semReleaser gives permits back for a lease; only locallease calls it.
type semReleaser Semaphore

func (r *semReleaser) LeaseName() string { return "channel semaphore" }

func (r *semReleaser) ReleaseLease(n uint64) { (*Semaphore)(r).giveBack(int64(n)) }
