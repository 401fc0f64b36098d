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

// TryAcquire takes l if it reads it free, racily.
func (l *Lock) TryAcquire(context.Context) (contend.Lease, error) {
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

// Semaphore is the semaphore family's racy control: a plain int64 count of
// permits in use, checked against the capacity and then incremented, with
// no synchronisation.
//
// What goes wrong: two acquirers that both read a count with room for
// their n both add n, and more than Capacity permits are held at once.
// Concurrent increments and decrements also lose updates, so the count
// drifts: down, and it admits ever more holders; up, and it admits fewer,
// possibly none (every Acquire then waits until its ctx is done). The race
// detector reports every concurrent use. The harness asserts that it
// overflows under concurrency, in a binary built without -race.
type Semaphore struct {
	capacity int64
	used     int64
	tokens   uint64
}

// NewSemaphore returns a Semaphore of capacity permits, or an error if
// capacity <= 0.
func NewSemaphore(capacity int64) (*Semaphore, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("naive: NewSemaphore(%d): capacity must be positive", capacity)
	}
	return &Semaphore{capacity: capacity}, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return s.capacity }

// Acquire waits until it reads room for n permits, then takes them, racily.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("naive: semaphore Acquire: %w", err)
		}
		if s.capacity-s.used >= n { // check ...
			s.used += n // ... then act
			s.tokens++
			return &semLease{s: s, n: n, token: s.tokens}, nil
		}
		if i%8 == 7 {
			runtime.Gosched()
		}
	}
}

// TryAcquire takes n permits if it reads room for them, racily.
func (s *Semaphore) TryAcquire(_ context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	if s.capacity-s.used < n {
		return nil, fmt.Errorf("naive: semaphore TryAcquire(%d): %w", n, contend.ErrHeld)
	}
	s.used += n
	s.tokens++
	return &semLease{s: s, n: n, token: s.tokens}, nil
}

type semLease struct {
	s        *Semaphore
	n        int64
	token    uint64
	released bool
}

func (l *semLease) Token() uint64 { return l.token }

func (l *semLease) Release(context.Context) error {
	if l.released {
		return fmt.Errorf("naive: semaphore Release: %w", contend.ErrNotHeld)
	}
	l.released = true
	l.s.used -= l.n
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
