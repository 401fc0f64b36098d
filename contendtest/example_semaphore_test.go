package contendtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
)

// mutexSemaphore is a semaphore written outside the lab: a count of
// permits held and a token count under a mutex, and a channel that each
// Release closes to wake the waiters, which then race for the permits.
type mutexSemaphore struct {
	mu       sync.Mutex
	capacity int64
	held     int64
	token    uint64
	released chan struct{}
}

func newMutexSemaphore(capacity int64) (contend.Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, 1<<62); err != nil {
		return nil, err
	}
	return &mutexSemaphore{capacity: capacity, released: make(chan struct{})}, nil
}

func (s *mutexSemaphore) Capacity() int64 { return s.capacity }

func (s *mutexSemaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n < 1 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.held+n <= s.capacity {
			defer s.mu.Unlock()
			return s.take(n), nil
		}
		released := s.released
		s.mu.Unlock()
		select {
		case <-released:
		case <-ctx.Done():
		}
	}
}

func (s *mutexSemaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n < 1 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held+n > s.capacity {
		return nil, contend.ErrHeld
	}
	return s.take(n), nil
}

// take takes n permits; s.mu is held.
func (s *mutexSemaphore) take(n int64) contend.Lease {
	s.held += n
	s.token++
	return &permits{s: s, n: n, token: s.token}
}

type permits struct {
	s        *mutexSemaphore
	n        int64
	token    uint64
	released bool // under s.mu
}

func (p *permits) Token() uint64 { return p.token }

func (p *permits) Release(context.Context) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.released {
		return contend.ErrNotHeld
	}
	p.released = true
	p.s.held -= p.n
	close(p.s.released)
	p.s.released = make(chan struct{})
	return nil
}

func (p *permits) Extend(_ context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("mutexSemaphore: Extend needs a positive ttl")
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.released {
		return contend.ErrNotHeld
	}
	return nil
}

func (p *permits) TTL() (time.Duration, bool) { return 0, false }

// ExampleSemaphore checks a semaphore written outside the lab. Its
// Release wakes the waiters instead of serving the first one, so a
// TryAcquire can take the permits first: the semaphore declares that
// deviation from the tokens-follow-grants check, which is then run
// expecting it to fail. In a test, one line runs every check as a
// subtest:
//
//	func TestMutexSemaphore(t *testing.T) {
//		contendtest.Semaphore(t, newMutexSemaphore, wakesAll)
//	}
//
// Outside a test, as here, each check runs on its own, with a nil
// *testing.T.
func ExampleSemaphore() {
	wakesAll := contendtest.Deviates("tokens-follow-grants", "Release wakes every waiter instead of serving the first")
	for _, c := range contendtest.SemaphoreChecks() {
		if err := c.Run(nil, newMutexSemaphore, wakesAll); err != nil {
			fmt.Println(c.Name(), err)
		} else {
			fmt.Println(c.Name(), "ok")
		}
	}
	// Output:
	// bad-capacity ok
	// permit-errors ok
	// try-acquire-all-or-nothing ok
	// release-twice ok
	// tokens-increase ok
	// extend-and-ttl ok
	// cancelled-context ok
	// blocks-at-capacity ok
	// blocked-timeout ok
	// multi-permit-no-deadlock ok
	// tokens-follow-grants ok
	// stress ok
	// linearizable ok
}
