// Package channel synchronises with Go channels alone: a lock is a channel
// of capacity 1 holding a value while the lock is held, and a semaphore of
// n permits is a channel of capacity n holding one value per permit taken.
// Waiting is the runtime's channel send queue, so it honours a context by
// selecting on ctx.Done() beside the send.
//
// # The lock and its context
//
// A blocked Acquire parks in a select on the send and on ctx.Done(). If ctx
// is done first, the runtime removes it from the send queue and it returns
// ctx.Err() (wrapped), having sent nothing: it holds nothing. If both
// become ready at once the select may pick either, so a waiter whose send
// went through checks ctx once more and, if it is done, receives its value
// back (handing the lock to the next sender) and fails: a ctx that ended
// before the Release it took over from always fails (go.dev/issue/63615).
// Until it does, the buffer is full with no lease live or to come, and
// TryAcquire reports ErrHeld: the hand-off deviation that
// contend.Lock.TryAcquire allows.
//
// # The semaphore's turn and front
//
// Two more channels of capacity 1 order a semaphore's acquirers. The turn
// holds the last fencing token granted: an acquirer receives it, takes its
// permits with non-blocking sends, and sends back the next token, so every
// lease's token is drawn with its permits, in the order they are taken.
// Nobody waits while holding the turn. An acquirer that does not find its
// permits free queues to become the front (a send on the front channel,
// FIFO), collects its permits there one send at a time, blocking until
// releases make room, and only then takes the turn for its token. Only the
// front collects, so two multi-permit acquirers never deadlock each holding
// part. While a front collects, the turn's holders take nothing (they check
// the front after their sends and give the permits back), so the front's
// token is the next one drawn. The front checks ctx once more before it
// draws its token and gives its permits back if it is done.
//
// An Acquire that sees no room, or a front, queues at once without passing
// the turn, so that under contention the turn, a channel used as a mutex,
// does not become a convoy (see BenchmarkSemaphore).
package channel

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// Lock is a [contend.Lock] on a channel of capacity 1: Acquire sends into
// it, Release receives from it. A Lock must be made by NewLock: its zero
// value has no channel, and its methods return contend.ErrNotConstructed
// (wrapped).
//
//   - Mutual exclusion: the buffer holds at most one value, and only the
//     lease that sent it takes it out.
//   - FIFO among waiters blocked in Acquire: senders queue in the channel
//     in arrival order, and a Release moves the first queued sender's value
//     straight into the buffer, so no newcomer can slip in between. A
//     goroutine arriving while the lock is free takes it at once, and
//     TryAcquire never jumps the queue (the buffer is full whenever anyone
//     waits).
//   - Fencing tokens strictly increase from one holder to the next.
//   - Contexts as [contend.Lock] says, with its hand-off deviation (see the
//     package documentation).
//
// Cost: Acquire and Release are one channel operation each, and each takes
// the channel's internal lock; every hand-off to a parked waiter is a
// goroutine wake-up. Plus a non-blocking receive on ctx.Done(), an atomic
// increment for the token and one 24-byte allocation for the lease.
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

func (r *lockReleaser) LeaseName() string { return "channel" }

// ReleaseLease never blocks: the lease's value is in the buffer.
func (r *lockReleaser) ReleaseLease(uint64) { <-r.ch }

// Semaphore is a [contend.Semaphore] on a channel of capacity Capacity:
// each permit taken is one value sent into it, each permit given back one
// value received. Its zero value has no permits (every request is a
// *contend.PermitError): use NewSemaphore.
//
//   - Never more than Capacity permits held: the buffer holds at most
//     Capacity values.
//   - FIFO among waiters, and fencing tokens in grant order; TryAcquire
//     returns ErrHeld while a waiter collects its permits.
//   - A ctx done before the permits are taken for this caller fails the
//     Acquire, holding nothing.
//
// Cost: Acquire(1) with a permit free is three channel operations (the turn
// twice and one send) and its Release one, plus one 48-byte lease; a waiter
// adds the front channel's two and one send per permit. While a waiter
// collects, the permits it holds idle are lost to everyone. The package
// documentation has the design.
type Semaphore struct {
	ch    chan struct{} // one value per permit held or collected
	turn  chan uint64   // capacity 1: the last token granted, while nobody takes permits
	front chan struct{} // capacity 1: full while an acquirer collects its permits
}

// NewSemaphore returns a Semaphore of capacity permits, all free, or a
// *contend.ConfigError if capacity <= 0 (or exceeds math.MaxInt). The
// buffer's values are of size zero, so a large capacity costs no memory.
func NewSemaphore(capacity int64) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, math.MaxInt); err != nil {
		return nil, err
	}
	s := &Semaphore{ch: make(chan struct{}, capacity), turn: make(chan uint64, 1), front: make(chan struct{}, 1)}
	s.turn <- 0
	return s, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return int64(cap(s.ch)) }

// Acquire takes n permits, blocking until it has them all, or until ctx is
// done; see Semaphore. n outside [1, Capacity] is a *contend.PermitError,
// at once.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.check(n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: Acquire: %w", err)
	}
	// Through the turn only if the permits look free and nobody collects:
	// the others would pass it for nothing and, under contention, make a
	// convoy of it. Queuing as a waiter is right either way.
	if len(s.front) == 0 && cap(s.ch)-len(s.ch) >= int(n) {
		if lease := s.tryTake(n); lease != nil {
			return lease, nil
		}
	}
	done := ctx.Done()
	select {
	case s.front <- struct{}{}:
	case <-done:
		return nil, fmt.Errorf("channel: Acquire(%d): %w", n, ctx.Err())
	}
	defer func() { <-s.front }()
	for got := int64(0); got < n; got++ {
		select {
		case s.ch <- struct{}{}:
		case <-done:
			s.giveBack(got)
			return nil, fmt.Errorf("channel: Acquire(%d) with %d collected: %w", n, got, ctx.Err())
		}
	}
	t := <-s.turn
	// When a send and ctx.Done() are ready at once, select picks either, so
	// ctx may have ended before the Release whose permit the send took
	// (go.dev/issue/63615): then, as x/sync does, fail and give it back.
	if locallease.Done(done) {
		s.giveBack(n)
		s.turn <- t
		return nil, fmt.Errorf("channel: Acquire(%d): %w", n, ctx.Err())
	}
	s.turn <- t + 1
	return s.lease(n, t+1), nil
}

// TryAcquire takes n permits if they are free and nobody waits, or returns
// contend.ErrHeld (wrapped); n outside [1, Capacity] is a
// *contend.PermitError, and a ctx done already returns its error. It may
// wait for the turn, which is never held for long, but never for permits.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.check(n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("channel: TryAcquire(%d): %w", n, err)
	}
	if lease := s.tryTake(n); lease != nil {
		return lease, nil
	}
	return nil, fmt.Errorf("channel: TryAcquire(%d): %w", n, contend.ErrHeld)
}

// tryTake takes n permits holding the turn, if they are free and no front
// collects, and returns their lease, or nil.
//
// The front is checked after the sends: a front whose first send came
// before ours is then seen (its send on the front channel happened before
// its send on ch, which happened before ours), so we never draw a token
// while a front holds permits it took before ours. A front that starts
// collecting after our sends draws after us, as its permits come after
// ours.
func (s *Semaphore) tryTake(n int64) *locallease.Lease {
	t := <-s.turn
	for got := int64(0); got < n; got++ {
		select {
		case s.ch <- struct{}{}:
		default:
			s.giveBack(got)
			s.turn <- t
			return nil
		}
	}
	if len(s.front) != 0 {
		s.giveBack(n)
		s.turn <- t
		return nil
	}
	s.turn <- t + 1
	return s.lease(n, t+1)
}

func (s *Semaphore) check(n int64) error {
	if n <= 0 || n > s.Capacity() {
		return &contend.PermitError{N: n, Capacity: s.Capacity()}
	}
	return nil
}

func (s *Semaphore) lease(n int64, tok uint64) *locallease.Lease {
	return locallease.New((*semReleaser)(s), uint64(n), tok)
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
