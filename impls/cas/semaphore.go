package cas

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// The state word: the top bit is queued, set exactly when the wait queue is
// not empty; the next 32 bits are the low 32 bits of the number of grants
// so far (the last lease's fencing token); the low 31 bits count the free
// permits.
const (
	queued   = uint64(1) << 63
	grantOne = uint64(1) << 31                      // one grant, in the grant field
	grants   = (grantOne<<32 - 1) &^ (grantOne - 1) // the grant field's mask
	freeMask = grantOne - 1                         // the free-permit field's mask
	// epoch is one carry out of the grant field: the tokens of one epoch
	// share their high 32 bits, kept in Semaphore.epoch.
	epoch = uint64(1) << 32
)

// MaxSemaphoreCapacity is the largest capacity NewSemaphore accepts: the
// free-permit count must fit in its 31 bits of the state word, beside the
// queued bit and the low 32 bits of the token.
const MaxSemaphoreCapacity = int64(freeMask)

// Semaphore is the lab's own [contend.Semaphore]: a lock-free fast path on
// one atomic word when permits are free and nobody waits, and a FIFO wait
// queue under a mutex when they are not (golang.org/x/sync/semaphore's
// design, with its mutex taken only on the slow path). Its zero value has
// no permits (every request is a *contend.PermitError): use NewSemaphore.
//
//   - Never more than Capacity permits held, taken all or nothing.
//   - FIFO among waiters, like x/sync: nobody, fast path or TryAcquire
//     included, takes free permits while anyone is queued, so a large
//     request is never starved by small ones. Acquirers that find permits
//     free and nobody queued are not ordered: whichever CAS lands first.
//   - Fencing tokens in grant order: a lease's token is greater than that
//     of every lease whose permits were taken before its own.
//   - A ctx done before the permits are taken for this caller fails the
//     Acquire, holding nothing (x/sync's rule).
//
// Cost: uncontended, Acquire is one load, one CAS, one load of the epoch
// and a non-blocking receive on ctx.Done(); Release one load and one CAS;
// no lock, and one 48-byte allocation for the lease. A waiter takes the
// mutex twice and allocates a queue node and a channel (like x/sync), and
// every Release while anyone waits takes the mutex; under heavy contention
// the queue is rarely empty and it costs about what x/sync does (see
// BenchmarkSemaphore). The package documentation has the design.
type Semaphore struct {
	state    atomic.Uint64 // queued | low 32 bits of the last token | free permits
	epoch    atomic.Uint64 // the tokens' high 32 bits, as a multiple of epoch; changed only under mu with the word locked
	capacity int64

	mu         sync.Mutex
	head, tail *waiter // the FIFO wait queue; guarded by mu
}

// waiter is one parked Acquire, a node of the wait queue.
type waiter struct {
	n          uint64
	token      uint64        // set, under mu, before ready is closed
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
	if tok, ok := s.tryFast(u); ok {
		return s.granted(ctx, done, n, tok)
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
		if st&freeMask >= u {
			if tok, ok := s.takeUnqueued(st, u); ok {
				s.mu.Unlock()
				return s.granted(ctx, done, n, tok)
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
		return s.granted(ctx, done, n, w.token)
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
// its error. It takes the lock only for the grant that carries into the
// next epoch, once in 2^32 grants.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("atomic: semaphore TryAcquire(%d): %w", n, err)
	}
	tok, ok := s.tryFast(uint64(n))
	if !ok {
		return nil, fmt.Errorf("atomic: semaphore TryAcquire(%d): %w", n, contend.ErrHeld)
	}
	return s.grant(n, tok), nil
}

// granted returns the lease of the n permits the caller has just taken,
// with token tok, unless ctx is done: then ctx may have ended before the
// Release whose permits were taken (go.dev/issue/63615), so, as x/sync
// does, it fails and gives the permits on to whoever waits.
func (s *Semaphore) granted(ctx context.Context, done <-chan struct{}, n int64, tok uint64) (contend.Lease, error) {
	if locallease.Done(done) {
		s.release(uint64(n))
		return nil, fmt.Errorf("atomic: semaphore Acquire(%d): %w", n, ctx.Err())
	}
	return s.grant(n, tok), nil
}

// tryFast takes n permits by CAS if they are free and nobody is queued, and
// returns the grant's token.
func (s *Semaphore) tryFast(n uint64) (uint64, bool) {
	for {
		st := s.state.Load()
		if st&queued != 0 || st&freeMask < n {
			return 0, false
		}
		if st&grants == grants { // this grant carries into the next epoch
			s.mu.Lock()
			tok, ok := s.takeUnqueued(s.state.Load(), n)
			s.mu.Unlock()
			if ok {
				return tok, true
			}
			continue
		}
		// The epoch is read between the load and the CAS: see "Tokens".
		e := s.epoch.Load()
		next := st - n + grantOne
		if s.state.CompareAndSwap(st, next) {
			return e + (next&grants)/grantOne, true
		}
	}
}

// takeUnqueued takes n permits from st, a word with the queued bit clear
// and n free permits, with a CAS, and returns the grant's token, or false
// if the word is no longer st. Called holding mu.
func (s *Semaphore) takeUnqueued(st, n uint64) (uint64, bool) {
	if st&queued != 0 || st&freeMask < n {
		return 0, false
	}
	if st&grants != grants {
		next := st - n + grantOne
		if !s.state.CompareAndSwap(st, next) {
			return 0, false
		}
		return s.epoch.Load() + (next&grants)/grantOne, true
	}
	// The carry: lock the word (fact b) so that nothing changes it while
	// the epoch moves; the queue is empty (fact a), so unlock it after.
	if !s.state.CompareAndSwap(st, st|queued) {
		return 0, false
	}
	tok := s.take(n)
	s.state.And(^queued)
	return tok, true
}

// take deducts n free permits and counts the grant, carrying into the next
// epoch if the grant field is full, and returns the grant's token. Called
// holding mu with the queued bit set, so that nothing else changes the
// word (fact b).
func (s *Semaphore) take(n uint64) uint64 {
	st := s.state.Load()
	if st&grants == grants {
		e := s.epoch.Add(epoch)
		s.state.Store(st - n - grants) // the grant field wraps to 0
		return e
	}
	return s.epoch.Load() + (s.state.Add(grantOne-n)&grants)/grantOne
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
		if s.state.Load()&freeMask < w.n {
			return
		}
		w.token = s.take(w.n) // the bit is set (fact a): no fast path interferes
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

func (s *Semaphore) grant(n int64, tok uint64) *locallease.Lease {
	return locallease.New((*semReleaser)(s), uint64(n), tok)
}

// semReleaser gives permits back for a lease; only locallease calls it.
type semReleaser Semaphore

func (r *semReleaser) LeaseName() string { return "atomic semaphore" }

func (r *semReleaser) ReleaseLease(n uint64) { (*Semaphore)(r).release(n) }
