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

// mutexLock is a lock written outside the lab: a held flag and a token
// count under a mutex, and a channel that each Release closes to wake the
// waiters, which then race for the lock.
type mutexLock struct {
	mu       sync.Mutex
	held     bool
	token    uint64
	released chan struct{}
}

func newMutexLock() contend.Lock { return &mutexLock{released: make(chan struct{})} }

func (l *mutexLock) Acquire(ctx context.Context) (contend.Lease, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.mu.Lock()
		if !l.held {
			defer l.mu.Unlock()
			return l.take(), nil
		}
		released := l.released
		l.mu.Unlock()
		select {
		case <-released:
		case <-ctx.Done():
		}
	}
}

func (l *mutexLock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return nil, contend.ErrHeld
	}
	return l.take(), nil
}

// take holds the lock; l.mu is held.
func (l *mutexLock) take() contend.Lease {
	l.held = true
	l.token++
	return &mutexLease{l: l, token: l.token}
}

type mutexLease struct {
	l        *mutexLock
	token    uint64
	released bool // under l.mu
}

func (s *mutexLease) Token() uint64 { return s.token }

func (s *mutexLease) Release(context.Context) error {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.released {
		return contend.ErrNotHeld
	}
	s.released, s.l.held = true, false
	close(s.l.released)
	s.l.released = make(chan struct{})
	return nil
}

func (s *mutexLease) Extend(_ context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("mutexLock: Extend needs a positive ttl")
	}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.released {
		return contend.ErrNotHeld
	}
	return nil
}

func (s *mutexLease) TTL() (time.Duration, bool) { return 0, false }

// ExampleLock checks a lock written outside the lab. In a test, one line
// runs every check as a subtest:
//
//	func TestMutexLock(t *testing.T) { contendtest.Lock(t, newMutexLock) }
//
// Outside a test, as here, each check runs on its own, with a nil
// *testing.T. The lock wakes every waiter on release, so it does not
// declare [contendtest.FIFO], and the fifo check is skipped.
func ExampleLock() {
	for _, c := range contendtest.LockChecks() {
		if err := c.Run(nil, newMutexLock); err != nil {
			fmt.Println(c.Name(), err)
		} else {
			fmt.Println(c.Name(), "ok")
		}
	}
	// Output:
	// try-acquire ok
	// release-twice ok
	// tokens-increase ok
	// extend-and-ttl ok
	// cancelled-context ok
	// blocked-timeout ok
	// blocked-granted ok
	// fifo contendtest: skipped: not declared FIFO
	// stress ok
	// linearizable ok
}
