package contendtest_test

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
)

// faultyLock is a FIFO channel lock, correct unless fault names one of the
// faults the checks look for.
type faultyLock struct {
	ch     chan struct{}
	tokens atomic.Uint64
	fault  string
}

func newFaultyLock(fault string) *faultyLock {
	return &faultyLock{ch: make(chan struct{}, 1), fault: fault}
}

func (l *faultyLock) Acquire(ctx context.Context) (contend.Lease, error) {
	switch l.fault {
	case "no-exclusion":
		return l.lease(), nil
	case "ignores-cancelled-context":
		select {
		case l.ch <- struct{}{}: // takes a free lock whatever ctx says
			return l.lease(), nil
		default:
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case l.ch <- struct{}{}:
		return l.lease(), nil
	case <-ctx.Done():
		if l.fault == "leaks-on-cancel" {
			// The classic leak: hand the wait to a goroutine, which takes
			// the lock after the caller has gone and never releases it.
			go func() {
				select {
				case l.ch <- struct{}{}:
				case <-time.After(2 * time.Second):
				}
			}()
		}
		return nil, ctx.Err()
	}
}

func (l *faultyLock) TryAcquire(context.Context) (contend.Lease, error) {
	if l.fault == "no-exclusion" {
		return l.lease(), nil
	}
	select {
	case l.ch <- struct{}{}:
		return l.lease(), nil
	default:
		return nil, contend.ErrHeld
	}
}

func (l *faultyLock) lease() *faultyLease {
	tok := l.tokens.Add(1)
	if l.fault == "repeated-tokens" {
		tok = 1
	}
	return &faultyLease{release: func() {
		if l.fault == "no-exclusion" {
			return
		}
		select {
		case <-l.ch:
		default:
		}
	}, token: tok, fault: l.fault}
}

// faultyLease is the lease of faultyLock and faultySemaphore.
type faultyLease struct {
	release  func()
	token    uint64
	released atomic.Bool
	fault    string
}

func (s *faultyLease) Token() uint64 { return s.token }

func (s *faultyLease) Release(ctx context.Context) error {
	if s.fault == "release-blocks" {
		// A Release that waits on a server that never answers: it returns
		// only when its context ends, as the contract lets it.
		<-ctx.Done()
		return ctx.Err()
	}
	if s.fault == "release-twice-frees" {
		s.release()
		return nil
	}
	if !s.released.CompareAndSwap(false, true) {
		return contend.ErrNotHeld
	}
	s.release()
	return nil
}

func (s *faultyLease) Extend(_ context.Context, ttl time.Duration) error {
	if s.fault == "extend-accepts-anything" {
		return nil
	}
	if ttl <= 0 {
		return errors.New("ttl must be positive")
	}
	if s.released.Load() {
		return contend.ErrNotHeld
	}
	return nil
}

func (s *faultyLease) TTL() (time.Duration, bool) { return 0, false }

// faultySemaphore is a channel semaphore that collects multi-permit
// requests one permit at a time, serialised by collector, correct unless
// fault names one of the faults the checks look for.
type faultySemaphore struct {
	ch        chan struct{}
	collector sync.Mutex
	tokens    atomic.Uint64
	fault     string
}

func newFaultySemaphore(fault string) func(int64) (contend.Semaphore, error) {
	return func(capacity int64) (contend.Semaphore, error) {
		if err := contend.CheckSemaphoreCapacity(capacity, math.MaxInt); err != nil {
			if fault == "plain-capacity-error" {
				return nil, errors.New("capacity must be positive")
			}
			return nil, err
		}
		return &faultySemaphore{ch: make(chan struct{}, capacity), fault: fault}, nil
	}
}

func (s *faultySemaphore) Capacity() int64 { return int64(cap(s.ch)) }

func (s *faultySemaphore) bad(n int64) error {
	if n >= 1 && n <= s.Capacity() {
		return nil
	}
	if s.fault == "no-permit-error" {
		return contend.ErrHeld
	}
	return &contend.PermitError{N: n, Capacity: s.Capacity()}
}

func (s *faultySemaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.bad(n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.fault != "unserialised" {
		s.collector.Lock()
		defer s.collector.Unlock()
	}
	for got := int64(0); got < n; got++ {
		select {
		case s.ch <- struct{}{}:
		case <-ctx.Done():
			if s.fault != "keeps-permits-on-cancel" {
				s.giveBack(got)
			}
			return nil, ctx.Err()
		}
		if n > 1 {
			runtime.Gosched() // let another collector interleave
		}
	}
	return s.lease(n), nil
}

func (s *faultySemaphore) TryAcquire(_ context.Context, n int64) (contend.Lease, error) {
	if err := s.bad(n); err != nil {
		return nil, err
	}
	if !s.collector.TryLock() {
		return nil, contend.ErrHeld
	}
	defer s.collector.Unlock()
	for got := int64(0); got < n; got++ {
		select {
		case s.ch <- struct{}{}:
		default:
			s.giveBack(got)
			return nil, contend.ErrHeld
		}
	}
	return s.lease(n), nil
}

func (s *faultySemaphore) giveBack(n int64) {
	for range n {
		<-s.ch
	}
}

func (s *faultySemaphore) lease(n int64) *faultyLease {
	return &faultyLease{release: func() { s.giveBack(n) }, token: s.tokens.Add(1)}
}

// overAdmitting reports one permit fewer than its semaphore has.
type overAdmitting struct{ contend.Semaphore }

func (s overAdmitting) Capacity() int64 { return s.Semaphore.Capacity() - 1 }

// newOverAdmitting builds a semaphore that admits one permit more than its
// capacity.
func newOverAdmitting(capacity int64) (contend.Semaphore, error) {
	s, err := newMutexSemaphore(capacity + 1)
	if err != nil {
		return nil, err
	}
	return overAdmitting{s}, nil
}

// semCapacity is the capacity of the semaphores the checks build.
const semCapacity = 4

// find returns the check named name of checks.
func find[F any](t *testing.T, checks []contendtest.Check[F], name string) contendtest.Check[F] {
	t.Helper()
	for _, c := range checks {
		if c.Name() == name {
			return c
		}
	}
	require.FailNow(t, "no such check", name)
	return contendtest.Check[F]{}
}

// TestLockChecksCatchFaults runs each lock and semaphore check on an
// implementation with the fault it looks for, and asserts that it fails;
// and runs every check on the same implementations without a fault, and
// asserts that they pass, so that what is caught is the fault.
func TestLockChecksCatchFaults(t *testing.T) {
	t.Run("lock-control", func(t *testing.T) {
		for _, c := range contendtest.LockChecks() {
			assert.NoError(t, c.Run(t, func() contend.Lock { return newFaultyLock("") }, contendtest.FIFO()), c.Name())
		}
	})
	t.Run("semaphore-control", func(t *testing.T) {
		for _, c := range contendtest.SemaphoreChecks() {
			assert.NoError(t, c.Run(t, newFaultySemaphore("")), c.Name())
		}
	})
	lockCases := []struct{ fault, check string }{
		{"ignores-cancelled-context", "cancelled-context"},
		{"leaks-on-cancel", "blocked-timeout"},
		{"release-twice-frees", "release-twice"},
		{"repeated-tokens", "tokens-increase"},
		{"extend-accepts-anything", "extend-and-ttl"},
		{"no-exclusion", "stress"},
		{"repeated-tokens", "stress"},
		{"no-exclusion", "linearizable"},
		{"repeated-tokens", "linearizable"},
	}
	for _, tc := range lockCases {
		t.Run("lock/"+tc.fault+"/"+tc.check, func(t *testing.T) {
			err := find(t, contendtest.LockChecks(), tc.check).Run(t, func() contend.Lock { return newFaultyLock(tc.fault) })
			if assert.Error(t, err, "check %s passed a lock with fault %s", tc.check, tc.fault) {
				t.Logf("%s caught %s: %s", tc.check, tc.fault, firstLine(err.Error()))
			}
		})
	}
	semCases := []struct {
		fault, check string
		newSem       contendtest.NewSemaphoreFunc
	}{
		{"no-permit-error", "permit-errors", newFaultySemaphore("no-permit-error")},
		{"plain-capacity-error", "bad-capacity", newFaultySemaphore("plain-capacity-error")},
		{"keeps-permits-on-cancel", "blocked-timeout", newFaultySemaphore("keeps-permits-on-cancel")},
		{"unserialised", "multi-permit-no-deadlock", newFaultySemaphore("unserialised")},
		{"over-admits", "stress", newOverAdmitting},
		{"over-admits", "linearizable", newOverAdmitting},
	}
	for _, tc := range semCases {
		t.Run("semaphore/"+tc.fault+"/"+tc.check, func(t *testing.T) {
			err := find(t, contendtest.SemaphoreChecks(), tc.check).Run(t, tc.newSem)
			if assert.Error(t, err, "check %s passed a semaphore with fault %s", tc.check, tc.fault) {
				t.Logf("%s caught %s: %s", tc.check, tc.fault, firstLine(err.Error()))
			}
		})
	}

	t.Run("run/no-exclusion", func(t *testing.T) {
		var run contendtest.LockRun
		contendtest.WithGOMAXPROCS(2, func() {
			for try := 0; try < 10 && run.Overlaps == 0; try++ {
				var err error
				run, err = contendtest.RunLock(newFaultyLock("no-exclusion"), contendtest.StressGoroutines, 50*time.Millisecond, 8*contendtest.WorkRounds)
				require.NoError(t, err)
			}
		})
		assert.Positive(t, run.Overlaps, "RunLock must see critical sections of a lock that excludes nobody overlap")
	})
	t.Run("run/release-blocks", func(t *testing.T) {
		// The runs bound their Releases, so a Release that never returns
		// fails the run, by name, instead of hanging the test.
		t.Parallel()
		start := time.Now()
		_, err := contendtest.RunLock(newFaultyLock("release-blocks"), 2, 20*time.Millisecond, 0)
		assert.ErrorContains(t, err, "did not return within")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), contendtest.ReleasePatience+5*time.Second, "the run outlived its bound")
	})
	t.Run("record/release-blocks", func(t *testing.T) {
		t.Parallel()
		_, err := contendtest.RecordLock(newFaultyLock("release-blocks"), 2, 1)
		assert.ErrorContains(t, err, "did not return within")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("run/repeated-tokens", func(t *testing.T) {
		run, err := contendtest.RunLock(newFaultyLock("repeated-tokens"), 2, 20*time.Millisecond, 0)
		require.NoError(t, err)
		require.Greater(t, run.Acquisitions, int64(1))
		assert.Equal(t, run.Acquisitions-1, run.TokenRegressions, "every lease after the first repeats token 1")
		assert.Zero(t, run.Overlaps)
	})
	t.Run("run/over-admits", func(t *testing.T) {
		s, err := newOverAdmitting(semCapacity)
		require.NoError(t, err)
		contendtest.WithGOMAXPROCS(1, func() {
			run, err := contendtest.RunSemaphore(s, contendtest.StressGoroutines, 50*time.Millisecond, func(int) int64 { return 1 })
			require.NoError(t, err)
			assert.Positive(t, run.Overflows, "a semaphore that admits one permit too many, on one P")
			assert.Equal(t, int64(semCapacity+1), run.MaxHeld)
		})
	})
}

// firstLine returns the "Error:" line of a testify failure and the line
// after it, which holds the detail.
func firstLine(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "Error:") {
			if i+1 < len(lines) && !strings.Contains(lines[i+1], ":\t") {
				l += " " + strings.TrimSpace(lines[i+1])
			}
			return l
		}
	}
	return strings.TrimSpace(s)
}
