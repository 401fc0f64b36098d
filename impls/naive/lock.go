package naive

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/contend-lab/contend"
)

// Lock is the lock family's racy control: a plain bool, checked and then
// set, with no synchronisation. It is deliberately wrong.
//
// What goes wrong: Acquire reads held, sees false, and then writes true.
// Two goroutines that read false at the same instant (waiters spinning on
// two CPUs when the holder releases, typically) both write true and both
// hold the lock: mutual exclusion fails. Its token counter is a plain
// uint64 too, so two holders can even get the same token. The race
// detector reports every concurrent use. The harness asserts that it
// overlaps under concurrency, in a binary built without -race.
//
// Correct only when used by one goroutine. A waiter checks its ctx between
// attempts and yields with runtime.Gosched every few of them; the yield is
// also what makes it load held afresh on each attempt.
type Lock struct {
	held   bool
	tokens uint64
}

// NewLock returns an unlocked Lock.
func NewLock() *Lock { return new(Lock) }

// Acquire waits until it reads held as false, then sets it, racily.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("naive: Acquire: %w", err)
		}
		if !l.held { // check ...
			l.held = true // ... then act: another goroutine may be here too
			l.tokens++
			return &lockLease{l: l, token: l.tokens}, nil
		}
		if i%8 == 7 {
			runtime.Gosched()
		}
	}
}

// TryAcquire takes l if it reads it free, racily; a ctx done already
// returns its error.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("naive: TryAcquire: %w", err)
	}
	if l.held {
		return nil, fmt.Errorf("naive: TryAcquire: %w", contend.ErrHeld)
	}
	l.held = true
	l.tokens++
	return &lockLease{l: l, token: l.tokens}, nil
}

// lockLease's released flag is touched by its holder only, so it alone is
// not racy.
type lockLease struct {
	l        *Lock
	token    uint64
	released bool
}

func (s *lockLease) Token() uint64 { return s.token }

func (s *lockLease) Release(context.Context) error {
	if s.released {
		return fmt.Errorf("naive: Release: %w", contend.ErrNotHeld)
	}
	s.released = true
	s.l.held = false
	return nil
}

func (s *lockLease) Extend(_ context.Context, ttl time.Duration) error {
	return extend(s.released, ttl)
}

func (s *lockLease) TTL() (time.Duration, bool) { return 0, false }

// Semaphore is the semaphore family's racy control: one plain bool per
// permit, with no synchronisation. Its zero value has no permits (every
// request is a *contend.PermitError). Acquire(n) looks for n slots that read
// free, then marks them taken: check, then act.
//
// What goes wrong: two acquirers that read the same slot free both mark it
// and both hold it, so more than Capacity permits are held at once. The
// race detector reports every concurrent use. The harness asserts that it
// overflows under concurrency, in a binary built without -race.
//
// Why slots and not a plain int count of permits in use: concurrent
// "used += n" and "used -= n" lose updates, so the count drifts, and once
// it has drifted up to Capacity nothing can ever acquire again; a benchmark
// of it would hang. Each slot is only ever stored to (taken by an acquirer,
// then freed by the same lease), never read-modified-written, so its last
// store is always a release and the semaphore cannot wedge; it can only
// over-admit, which is the failure it is kept to show.
type Semaphore struct {
	taken  []bool
	tokens uint64
}

// maxNaiveCapacity bounds the slots a naive Semaphore allocates.
const maxNaiveCapacity = 1 << 20

// NewSemaphore returns a Semaphore of capacity permits, or a
// *contend.ConfigError if capacity <= 0 or above 2^20 (it allocates one
// bool per permit, and Acquire scans them all).
func NewSemaphore(capacity int64) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, maxNaiveCapacity); err != nil {
		return nil, err
	}
	return &Semaphore{taken: make([]bool, capacity)}, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return int64(len(s.taken)) }

// Acquire waits until it reads n free slots, then takes them, racily.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.Capacity() {
		return nil, &contend.PermitError{N: n, Capacity: s.Capacity()}
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("naive: semaphore Acquire: %w", err)
		}
		if lease := s.take(n); lease != nil {
			return lease, nil
		}
		if i%8 == 7 {
			runtime.Gosched()
		}
	}
}

// TryAcquire takes n permits if it reads n free slots, racily; a ctx done
// already returns its error.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.Capacity() {
		return nil, &contend.PermitError{N: n, Capacity: s.Capacity()}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("naive: semaphore TryAcquire(%d): %w", n, err)
	}
	if lease := s.take(n); lease != nil {
		return lease, nil
	}
	return nil, fmt.Errorf("naive: semaphore TryAcquire(%d): %w", n, contend.ErrHeld)
}

// take marks the first n slots it reads free as taken, or returns nil if
// it reads fewer than n free.
func (s *Semaphore) take(n int64) *semLease {
	slots := make([]int, 0, n)
	for i, t := range s.taken { // check ...
		if !t {
			slots = append(slots, i)
			if int64(len(slots)) == n {
				break
			}
		}
	}
	if int64(len(slots)) < n {
		return nil
	}
	for _, i := range slots { // ... then act: another goroutine may have read them free too
		s.taken[i] = true
	}
	s.tokens++
	return &semLease{s: s, slots: slots, token: s.tokens}
}

type semLease struct {
	s        *Semaphore
	slots    []int
	token    uint64
	released bool
}

func (l *semLease) Token() uint64 { return l.token }

func (l *semLease) Release(context.Context) error {
	if l.released {
		return fmt.Errorf("naive: semaphore Release: %w", contend.ErrNotHeld)
	}
	l.released = true
	for _, i := range l.slots {
		l.s.taken[i] = false
	}
	return nil
}

func (l *semLease) Extend(_ context.Context, ttl time.Duration) error {
	return extend(l.released, ttl)
}

func (l *semLease) TTL() (time.Duration, bool) { return 0, false }

var errBadTTL = errors.New("ttl must be positive")

func extend(released bool, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("naive: Extend(%v): %w", ttl, errBadTTL)
	}
	if released {
		return fmt.Errorf("naive: Extend: %w", contend.ErrNotHeld)
	}
	return nil
}
