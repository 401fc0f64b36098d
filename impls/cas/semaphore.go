package cas

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// queued is the state word's top bit: set exactly when the wait queue is
// not empty. The other 63 bits count the free permits.
const queued = uint64(1) << 63

// MaxSemaphoreCapacity is the largest capacity NewSemaphore accepts: the
// free-permit count must fit beside the queued bit.
const MaxSemaphoreCapacity = int64(1) << 62

// Semaphore is the lab's own contend.Semaphore: a lock-free fast path on one
// atomic word when permits are free and nobody waits, and a FIFO wait queue
// under a mutex when they are not (golang.org/x/sync/semaphore's design,
// with its mutex taken only on the slow path). Its zero value has no
// permits (every request is a *contend.PermitError): use NewSemaphore.
//
// The state is one uint64: the number of free permits, and a queued bit
// that is set exactly when the wait queue is not empty.
//
//   - Acquire's fast path: load the word; if the queued bit is clear and
//     there are n free permits, compare-and-swap them away. No lock.
//   - Release's fast path: if the queued bit is clear, compare-and-swap the
//     n permits back. No lock.
//   - Slow path, under mu: an acquirer that finds too few permits (or a
//     queue) sets the queued bit by CAS, if it is not set, appends itself to
//     the queue and parks on its own channel. A releaser that finds the bit
//     set adds its permits under mu and serves the queue from the head,
//     deducting each served waiter's permits and closing its channel, until
//     the head asks for more than are free or the queue is empty (then it
//     clears the bit).
//
// Guarantees:
//   - Never more than Capacity permits held: permits are taken only by a CAS
//     or (under mu, with the queued bit set) by a deduction from a count
//     that the head's request fits in.
//   - FIFO among waiters, like x/sync: the head is served first, and nobody,
//     fast path or TryAcquire included, takes free permits while anyone is
//     queued (the fast path requires the queued bit clear), so a large
//     request is never starved by small ones. Acquirers that find permits
//     free and nobody queued are not ordered: whichever CAS lands first.
//   - All or nothing: Acquire(n) takes n permits in one step, never part.
//   - A blocked Acquire whose ctx is done leaves the queue (if it was the
//     head, serving those behind it that now fit), or, if it was served
//     meanwhile, gives its permits back, and returns ctx.Err() (wrapped),
//     holding nothing. A waiter woken with its permits checks ctx once more
//     and gives them back if it is done, so a ctx that ended before the
//     Release that served it always fails (x/sync's rule). An Acquire or
//     TryAcquire whose ctx is done already fails at once.
//   - Tokens: the next value of an atomic counter incremented once the
//     permits are held; every lease's token is greater than that of every
//     lease granted before it.
//
// Why no wake-up is lost. Three facts hold whenever mu is not held:
//
//	(a) the queued bit is set if and only if the queue is not empty: it is
//	    set under mu by the acquirer that then enqueues, under the same
//	    lock, and cleared under mu only when the queue empties;
//	(b) while the bit is set, only a goroutine holding mu changes the word:
//	    both fast paths CAS against a word they loaded with the bit clear,
//	    so a CAS fails once the bit is set;
//	(c) if the queue is not empty, its head asks for more permits than are
//	    free: a waiter is enqueued as the head only when the acquirer saw
//	    too few permits in the same word its CAS set the bit in, and every
//	    section under mu that frees permits (a slow Release, a served waiter
//	    giving up, a head leaving) ends by serving heads while they fit.
//
// So a parked head waits only while its request does not fit, and by (b)
// the free count can only grow by a Release under mu, which by (c) serves
// it if it now fits; a waiter behind the head is served in turn as soon as
// those before it are. A fast-path Release whose CAS landed just before an
// acquirer set the bit is not lost either: the acquirer's CAS read the word
// after it, permits included. Go's atomics and sync.Mutex are sequentially
// consistent, which the argument relies on.
//
// Cost: uncontended, Acquire is one load and one CAS, Release the same, plus
// a non-blocking receive on ctx.Done(), an atomic increment for the token and one 32-byte allocation for the
// lease; no lock. On the slow path, a waiter takes mu twice and allocates a
// queue node and a channel (like x/sync), and every Release while anyone
// waits takes mu. Under heavy contention (far more acquirers than permits)
// the queue is rarely empty, so most operations take the slow path and it
// costs about what x/sync does; it wins when permits are usually free.
type Semaphore struct {
	state    atomic.Uint64 // free permits | queued
	capacity int64
	tokens   atomic.Uint64

	mu         sync.Mutex
	head, tail *waiter // the FIFO wait queue; guarded by mu
}

// waiter is one parked Acquire, a node of the wait queue.
type waiter struct {
	n          uint64
	ready      chan struct{} // closed, under mu, once n permits are deducted for it
	prev, next *waiter
}

// NewSemaphore returns a Semaphore of capacity permits, all free, or a
// *contend.ConfigError if capacity <= 0 or capacity > MaxSemaphoreCapacity.
func NewSemaphore(capacity int64) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, MaxSemaphoreCapacity); err != nil {
		return nil, err
	}
	s := &Semaphore{capacity: capacity}
	s.state.Store(uint64(capacity))
	return s, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return s.capacity }

// Acquire takes n permits: at once with one CAS if they are free and nobody
// waits, else it queues (FIFO) until they are granted or ctx is done; see
// Semaphore. n outside [1, Capacity] is a *contend.PermitError, at once.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	done := ctx.Done()
	u := uint64(n)
	if s.tryFast(u) {
		return s.granted(ctx, done, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("atomic: semaphore Acquire(%d): %w", n, err)
	}

	s.mu.Lock()
	for {
		st := s.state.Load()
		if st&queued != 0 {
			break // others wait: queue behind them
		}
		if st >= u {
			if s.state.CompareAndSwap(st, st-u) {
				s.mu.Unlock()
				return s.granted(ctx, done, n)
			}
			continue
		}
		if s.state.CompareAndSwap(st, st|queued) {
			break // too few permits, and we will be the head
		}
	}
	w := &waiter{n: u, ready: make(chan struct{})}
	s.push(w)
	s.mu.Unlock()

	select {
	case <-w.ready:
		return s.granted(ctx, done, n)
	case <-done:
	}
	s.mu.Lock()
	select {
	case <-w.ready:
		// Served between ctx and mu: the permits are ours; give them back.
		s.state.Add(u)
	default:
		s.remove(w)
	}
	s.serve()
	s.mu.Unlock()
	return nil, fmt.Errorf("atomic: semaphore Acquire(%d): %w", n, ctx.Err())
}

// TryAcquire takes n permits if they are free and nobody waits, with one
// CAS, or returns contend.ErrHeld (wrapped); a ctx done already returns
// its error. It never takes the lock.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("atomic: semaphore TryAcquire(%d): %w", n, err)
	}
	if !s.tryFast(uint64(n)) {
		return nil, fmt.Errorf("atomic: semaphore TryAcquire(%d): %w", n, contend.ErrHeld)
	}
	return s.grant(n), nil
}

// granted returns the lease of the n permits the caller has just taken,
// unless ctx is done: then ctx may have ended before the Release whose
// permits were taken (go.dev/issue/63615), so, as x/sync does, it fails and
// gives the permits on to whoever waits.
func (s *Semaphore) granted(ctx context.Context, done <-chan struct{}, n int64) (contend.Lease, error) {
	if locallease.Done(done) {
		s.release(uint64(n))
		return nil, fmt.Errorf("atomic: semaphore Acquire(%d): %w", n, ctx.Err())
	}
	return s.grant(n), nil
}

// tryFast takes n permits by CAS if they are free and nobody is queued.
func (s *Semaphore) tryFast(n uint64) bool {
	for {
		st := s.state.Load()
		if st&queued != 0 || st < n {
			return false
		}
		if s.state.CompareAndSwap(st, st-n) {
			return true
		}
	}
}

// release gives n permits back.
func (s *Semaphore) release(n uint64) {
	for {
		st := s.state.Load()
		if st&queued != 0 {
			break
		}
		if s.state.CompareAndSwap(st, st+n) {
			return
		}
	}
	s.mu.Lock()
	s.state.Add(n) // the bit may have cleared since: Add is right either way
	s.serve()
	s.mu.Unlock()
}

// serve grants permits to waiters from the head while their requests fit,
// and clears the queued bit if the queue empties. Called holding mu.
func (s *Semaphore) serve() {
	for w := s.head; w != nil; w = s.head {
		if s.state.Load()&^queued < w.n {
			return
		}
		s.state.Add(-w.n) // the bit is set (fact a): no fast path interferes
		s.remove(w)
		close(w.ready)
	}
	s.state.And(^queued)
}

// push appends w to the queue. Called holding mu.
func (s *Semaphore) push(w *waiter) {
	w.prev = s.tail
	if s.tail == nil {
		s.head = w
	} else {
		s.tail.next = w
	}
	s.tail = w
}

// remove unlinks w from the queue. Called holding mu.
func (s *Semaphore) remove(w *waiter) {
	if w.prev == nil {
		s.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		s.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next = nil, nil
}

func (s *Semaphore) grant(n int64) *locallease.Lease {
	return locallease.New((*semReleaser)(s), uint64(n), s.tokens.Add(1))
}

// semReleaser gives permits back for a lease; only locallease calls it.
type semReleaser Semaphore

func (r *semReleaser) LeaseName() string { return "atomic semaphore" }

func (r *semReleaser) ReleaseLease(n uint64) { (*Semaphore)(r).release(n) }
