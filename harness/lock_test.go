package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/raceflag"
)

// The conformance checks below report through a require.TestingT: a
// *testing.T in the suite, and a recorder when TestLockChecksCatchFaults
// shows that a check fails on a lock or semaphore with the fault it looks
// for. Assertions are made on the check's own goroutine only; work on other
// goroutines hands its results back.

var bg = context.Background()

// patience bounds every wait for something that should happen promptly
// (a blocked Acquire returning after its timeout, a waiter being granted),
// so that a broken implementation fails a check instead of hanging the
// suite.
const patience = 5 * time.Second

// shortTimeout is the context timeout of Acquires that are meant to expire.
const shortTimeout = 50 * time.Millisecond

// elsewhere runs f on a new goroutine and reports whether it returned
// within d. A goroutine that does not return is left behind: the check
// fails.
func elsewhere(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// probe tries the lock from another goroutine (so that a reentrant lock's
// holder does not simply nest) and releases it there if it got it. It
// returns TryAcquire's error, or an error if TryAcquire blocked.
func probe(l contend.Lock) error {
	var err error
	if !elsewhere(patience, func() {
		var lease contend.Lease
		if lease, err = l.TryAcquire(bg); err == nil {
			err = lease.Release(bg)
		}
	}) {
		return errors.New("TryAcquire blocked")
	}
	return err
}

// probeSem is probe for n permits of a semaphore.
func probeSem(s contend.Semaphore, n int64) error {
	var err error
	if !elsewhere(patience, func() {
		var lease contend.Lease
		if lease, err = s.TryAcquire(bg, n); err == nil {
			err = lease.Release(bg)
		}
	}) {
		return fmt.Errorf("TryAcquire(%d) blocked", n)
	}
	return err
}

type lockCheck struct {
	name     string
	fairOnly bool // run only on locks that declare Fair
	run      func(t require.TestingT, newLock func() contend.Lock)
}

func lockChecks() []lockCheck {
	return []lockCheck{
		{name: "try-acquire", run: checkLockTryAcquire},
		{name: "release-twice", run: checkLockReleaseTwice},
		{name: "tokens-increase", run: checkLockTokens},
		{name: "extend-and-ttl", run: checkLockExtend},
		{name: "cancelled-context", run: checkLockCancelled},
		{name: "blocked-timeout", run: checkLockBlockedTimeout},
		{name: "blocked-granted", run: checkLockBlockedGranted},
		{name: "fifo", fairOnly: true, run: checkLockFIFO},
	}
}

func checkLockTryAcquire(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	lease, err := l.TryAcquire(bg)
	require.NoError(t, err, "TryAcquire on a free lock")
	require.NotNil(t, lease)
	assert.ErrorIs(t, probe(l), contend.ErrHeld, "TryAcquire from another goroutine while it is held")
	require.NoError(t, lease.Release(bg))
	assert.NoError(t, probe(l), "TryAcquire once released")
}

func checkLockReleaseTwice(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	old, err := l.Acquire(bg)
	require.NoError(t, err)
	require.NoError(t, old.Release(bg))
	assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld, "second Release")
	assert.ErrorIs(t, old.Extend(bg, time.Second), contend.ErrNotHeld, "Extend after Release")
	holder, err := l.TryAcquire(bg)
	require.NoError(t, err, "the lock is free after one Release")
	assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld, "a stale lease's Release while another holds")
	assert.ErrorIs(t, probe(l), contend.ErrHeld, "a stale lease's Release must not free the holder's lock")
	require.NoError(t, holder.Release(bg))
	assert.NoError(t, probe(l))
}

func checkLockTokens(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	var last uint64
	for i := range 40 {
		var lease contend.Lease
		var err error
		switch i % 4 {
		case 0:
			lease, err = l.Acquire(bg)
		case 1:
			ctx, cancel := context.WithTimeout(bg, patience)
			lease, err = l.Acquire(ctx)
			cancel()
		case 2:
			lease, err = l.TryAcquire(bg)
		case 3: // from another goroutine, released there
			var tok uint64
			require.True(t, elsewhere(patience, func() {
				var s contend.Lease
				if s, err = l.Acquire(bg); err == nil {
					tok = s.Token()
					err = s.Release(bg)
				}
			}))
			require.NoError(t, err)
			assert.Greater(t, tok, last, "acquisition %d", i)
			last = tok
			continue
		}
		require.NoError(t, err, "acquisition %d", i)
		assert.Greater(t, lease.Token(), last, "acquisition %d", i)
		last = lease.Token()
		require.NoError(t, lease.Release(bg))
	}
}

func checkLockExtend(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	lease, err := l.Acquire(bg)
	require.NoError(t, err)
	ttl, expires := lease.TTL()
	assert.False(t, expires, "an in-process lease never expires")
	assert.Zero(t, ttl)
	assert.Error(t, lease.Extend(bg, 0), "Extend(0)")
	assert.Error(t, lease.Extend(bg, -time.Second), "Extend(-1s)")
	assert.NoError(t, lease.Extend(bg, time.Second))
	_, expires = lease.TTL()
	assert.False(t, expires, "Extend leaves an in-process lease without expiry")
	require.NoError(t, lease.Release(bg))
	assert.ErrorIs(t, lease.Extend(bg, time.Second), contend.ErrNotHeld)
}

func checkLockCancelled(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	ctx, cancel := context.WithCancel(bg)
	cancel()
	lease, err := l.Acquire(ctx)
	assert.ErrorIs(t, err, context.Canceled, "Acquire with a cancelled context, on a free lock")
	assert.Nil(t, lease)
	assert.NoError(t, probe(l), "the lock must be left free")

	ctx, cancel = context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel()
	lease, err = l.Acquire(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire with an expired context")
	assert.Nil(t, lease)
	assert.NoError(t, probe(l), "the lock must be left free")
}

// checkLockBlockedTimeout: waiters blocked behind a holder give up when
// their contexts expire, and leave the lock as they found it.
func checkLockBlockedTimeout(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	holder, err := l.Acquire(bg)
	require.NoError(t, err)
	const waiters = 4
	errs := make([]error, waiters)
	start := time.Now()
	returned := elsewhere(patience, func() {
		var wg sync.WaitGroup
		for i := range waiters {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(bg, shortTimeout)
				defer cancel()
				lease, err := l.Acquire(ctx)
				if lease != nil {
					_ = lease.Release(bg)
				}
				errs[i] = err
			})
		}
		wg.Wait()
	})
	require.True(t, returned, "Acquires with a %v timeout behind a holder did not return within %v", shortTimeout, patience)
	assert.GreaterOrEqual(t, time.Since(start), shortTimeout, "they returned before their contexts expired")
	for i, err := range errs {
		assert.ErrorIs(t, err, context.DeadlineExceeded, "waiter %d", i)
	}
	assert.ErrorIs(t, probe(l), contend.ErrHeld, "the holder still holds")
	require.NoError(t, holder.Release(bg))

	// Usable: the waiters that gave up left nothing held or queued.
	assert.NoError(t, probe(l), "TryAcquire after the holder released")
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	lease, err := l.Acquire(ctx)
	require.NoError(t, err, "Acquire after the waiters gave up")
	require.NoError(t, lease.Release(bg))
}

// checkLockBlockedGranted: a waiter blocks while the lock is held and is
// granted it when the holder releases.
func checkLockBlockedGranted(t require.TestingT, newLock func() contend.Lock) {
	for _, cancellable := range []bool{false, true} {
		l := newLock()
		holder, err := l.Acquire(bg)
		require.NoError(t, err)
		type result struct {
			token uint64
			err   error
		}
		got := make(chan result, 1)
		go func() {
			ctx, cancel := bg, context.CancelFunc(func() {})
			if cancellable {
				ctx, cancel = context.WithTimeout(bg, 10*patience)
			}
			defer cancel()
			lease, err := l.Acquire(ctx)
			if err != nil {
				got <- result{err: err}
				return
			}
			got <- result{token: lease.Token(), err: lease.Release(bg)} // a reentrant lease is released by its goroutine
		}()
		select {
		case r := <-got:
			assert.Fail(t, "Acquire returned while the lock was held", "cancellable %v: %v", cancellable, r.err)
		case <-time.After(30 * time.Millisecond):
		}
		require.NoError(t, holder.Release(bg))
		select {
		case r := <-got:
			assert.NoError(t, r.err, "cancellable %v", cancellable)
			assert.Greater(t, r.token, holder.Token(), "cancellable %v", cancellable)
		case <-time.After(patience):
			assert.Fail(t, "the waiter was not granted the released lock", "cancellable %v", cancellable)
		}
	}
}

// checkLockFIFO: waiters that queued one after another are granted the
// lock in that order. Each waiter is given 20 ms to queue before the next
// starts.
func checkLockFIFO(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	holder, err := l.Acquire(bg)
	require.NoError(t, err)
	const waiters = 4
	order := make(chan int, waiters)
	for i := range waiters {
		go func() {
			ctx, cancel := context.WithTimeout(bg, patience)
			defer cancel()
			lease, err := l.Acquire(ctx)
			if err != nil {
				order <- -1
				return
			}
			order <- i
			time.Sleep(time.Millisecond)
			_ = lease.Release(bg)
		}()
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, holder.Release(bg))
	var got []int
	for range waiters {
		select {
		case i := <-order:
			got = append(got, i)
		case <-time.After(patience):
			require.Fail(t, "a waiter was never granted the lock", "granted so far: %v", got)
		}
	}
	assert.Equal(t, []int{0, 1, 2, 3}, got, "grant order of waiters queued in order 0..3")
}

type semaphoreCheck struct {
	name string
	run  func(t require.TestingT, newSem func(int64) (contend.Semaphore, error))
}

func semaphoreChecks() []semaphoreCheck {
	return []semaphoreCheck{
		{"bad-capacity", checkSemBadCapacity},
		{"permit-errors", checkSemPermitErrors},
		{"try-acquire-all-or-nothing", checkSemTryAcquire},
		{"release-twice", checkSemReleaseTwice},
		{"tokens-increase", checkSemTokens},
		{"extend-and-ttl", checkSemExtend},
		{"cancelled-context", checkSemCancelled},
		{"blocks-at-capacity", checkSemBlocksAtCapacity},
		{"blocked-timeout", checkSemBlockedTimeout},
		{"multi-permit-no-deadlock", checkSemNoDeadlock},
	}
}

// semCapacity is the capacity of the semaphores the checks make.
const semCapacity = 4

func newSem(t require.TestingT, newSem func(int64) (contend.Semaphore, error)) contend.Semaphore {
	s, err := newSem(semCapacity)
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Equal(t, int64(semCapacity), s.Capacity())
	return s
}

func checkSemBadCapacity(t require.TestingT, newSem func(int64) (contend.Semaphore, error)) {
	for _, c := range []int64{0, -1, math.MinInt64} {
		var s contend.Semaphore
		var err error
		assert.NotPanics(t, func() { s, err = newSem(c) }, "capacity %d", c)
		assert.Error(t, err, "capacity %d", c)
		assert.Nil(t, s, "capacity %d", c)
	}
}

func checkSemPermitErrors(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	all, err := s.Acquire(bg, semCapacity) // impossible requests fail as such even when nothing is free
	require.NoError(t, err)
	for _, n := range []int64{0, -1, semCapacity + 1, math.MaxInt64, math.MinInt64} {
		for _, op := range []string{"Acquire", "TryAcquire"} {
			var lease contend.Lease
			var err error
			returned := elsewhere(patience, func() {
				if op == "Acquire" {
					lease, err = s.Acquire(bg, n)
				} else {
					lease, err = s.TryAcquire(bg, n)
				}
			})
			require.True(t, returned, "%s(%d) of %d blocked: it can never succeed and must fail at once", op, n, semCapacity)
			var pe *contend.PermitError
			if assert.ErrorAs(t, err, &pe, "%s(%d)", op, n) {
				assert.Equal(t, contend.PermitError{N: n, Capacity: semCapacity}, *pe)
			}
			assert.Nil(t, lease)
		}
	}
	require.NoError(t, all.Release(bg))
}

func checkSemTryAcquire(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	three, err := s.TryAcquire(bg, 3)
	require.NoError(t, err)
	_, err = s.TryAcquire(bg, 2)
	assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire(2) with 1 free")
	one, err := s.TryAcquire(bg, 1)
	require.NoError(t, err, "TryAcquire(1) with 1 free: the failed TryAcquire(2) took nothing")
	_, err = s.TryAcquire(bg, 1)
	assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire(1) with none free")
	require.NoError(t, three.Release(bg))
	assert.NoError(t, probeSem(s, 3), "three free again")
	assert.ErrorIs(t, probeSem(s, 4), contend.ErrHeld)
	require.NoError(t, one.Release(bg))
	assert.NoError(t, probeSem(s, 4))
}

func checkSemReleaseTwice(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	old, err := s.Acquire(bg, 2)
	require.NoError(t, err)
	require.NoError(t, old.Release(bg))
	assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld, "second Release")
	assert.ErrorIs(t, old.Extend(bg, time.Second), contend.ErrNotHeld, "Extend after Release")
	all, err := s.TryAcquire(bg, semCapacity)
	require.NoError(t, err, "every permit is free after one Release")
	assert.ErrorIs(t, old.Release(bg), contend.ErrNotHeld, "a stale lease's Release")
	assert.ErrorIs(t, probeSem(s, 1), contend.ErrHeld, "a stale Release must not give back permits it does not hold")
	require.NoError(t, all.Release(bg))
}

func checkSemTokens(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	var last uint64
	var held []contend.Lease
	for i := range 40 {
		n := int64(1 + i%2)
		if len(held) >= 2 {
			for _, h := range held {
				require.NoError(t, h.Release(bg))
			}
			held = held[:0]
		}
		var lease contend.Lease
		var err error
		if i%3 == 0 {
			lease, err = s.TryAcquire(bg, n)
		} else {
			ctx, cancel := context.WithTimeout(bg, patience)
			lease, err = s.Acquire(ctx, n)
			cancel()
		}
		require.NoError(t, err, "acquisition %d", i)
		assert.Greater(t, lease.Token(), last, "acquisition %d", i)
		last = lease.Token()
		held = append(held, lease)
	}
	for _, h := range held {
		require.NoError(t, h.Release(bg))
	}
}

func checkSemExtend(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	lease, err := s.Acquire(bg, 2)
	require.NoError(t, err)
	ttl, expires := lease.TTL()
	assert.False(t, expires, "an in-process lease never expires")
	assert.Zero(t, ttl)
	assert.Error(t, lease.Extend(bg, 0), "Extend(0)")
	assert.Error(t, lease.Extend(bg, -time.Second), "Extend(-1s)")
	assert.NoError(t, lease.Extend(bg, time.Second))
	require.NoError(t, lease.Release(bg))
	assert.ErrorIs(t, lease.Extend(bg, time.Second), contend.ErrNotHeld)
}

func checkSemCancelled(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	for _, n := range []int64{1, 3} {
		lease, err := s.Acquire(ctx, n)
		assert.ErrorIs(t, err, context.Canceled, "Acquire(%d) with a cancelled context, all permits free", n)
		assert.Nil(t, lease)
		assert.NoError(t, probeSem(s, semCapacity), "every permit must be left free")
	}
}

// checkSemBlocksAtCapacity: with every permit held, Acquire blocks; a
// waiter for 2 is granted only once two permits are free.
func checkSemBlocksAtCapacity(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	var held []contend.Lease
	for range semCapacity {
		lease, err := s.Acquire(bg, 1)
		require.NoError(t, err)
		held = append(held, lease)
	}
	_, err := s.TryAcquire(bg, 1)
	assert.ErrorIs(t, err, contend.ErrHeld, "TryAcquire at capacity")
	var blockedErr error
	require.True(t, elsewhere(patience, func() {
		ctx, cancel := context.WithTimeout(bg, shortTimeout)
		defer cancel()
		var lease contend.Lease
		if lease, blockedErr = s.Acquire(ctx, 1); lease != nil {
			_ = lease.Release(bg)
		}
	}), "Acquire with a %v timeout at capacity did not return", shortTimeout)
	assert.ErrorIs(t, blockedErr, context.DeadlineExceeded, "Acquire at capacity")

	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 10*patience)
		defer cancel()
		lease, err := s.Acquire(ctx, 2)
		if err == nil {
			err = lease.Release(bg)
		}
		got <- err
	}()
	require.NoError(t, held[0].Release(bg))
	select {
	case err := <-got:
		assert.Fail(t, "Acquire(2) returned with 1 permit free", "%v", err)
	case <-time.After(30 * time.Millisecond):
	}
	require.NoError(t, held[1].Release(bg))
	select {
	case err := <-got:
		assert.NoError(t, err, "Acquire(2) once 2 permits are free")
	case <-time.After(patience):
		assert.Fail(t, "Acquire(2) was not granted 2 free permits")
	}
	for _, h := range held[2:] {
		require.NoError(t, h.Release(bg))
	}
	assert.NoError(t, probeSem(s, semCapacity))
}

// checkSemBlockedTimeout: waiters for 1, 2 and every permit that give up
// leave every permit free afterwards, including any they had collected.
func checkSemBlockedTimeout(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	holder, err := s.Acquire(bg, 3)
	require.NoError(t, err)
	wants := []int64{2, semCapacity, 2, 1, 1}
	errs := make([]error, len(wants))
	returned := elsewhere(patience, func() {
		var wg sync.WaitGroup
		for i, n := range wants {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(bg, shortTimeout)
				defer cancel()
				// A waiter for 1 that is granted the free permit holds it
				// past the others' timeouts, so that they stay blocked.
				lease, err := s.Acquire(ctx, n)
				if lease != nil {
					<-ctx.Done()
					time.Sleep(shortTimeout)
					errs[i] = lease.Release(bg)
					return
				}
				errs[i] = err
			})
		}
		wg.Wait()
	})
	require.True(t, returned, "Acquires with a %v timeout did not return within %v", shortTimeout, patience)
	for i, err := range errs {
		if wants[i] > 1 {
			assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire(%d) with 1 permit free", wants[i])
		} else if err != nil {
			// A FIFO semaphore may keep a waiter for 1 queued behind a
			// waiter for 2 until both time out.
			assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire(1) with 1 permit free")
		}
	}
	require.NoError(t, holder.Release(bg))
	assert.NoError(t, probeSem(s, semCapacity), "every permit free once the holder released")
}

// checkSemNoDeadlock: acquirers of 3 permits of 4, two at a time, with
// single-permit acquirers beside them, all finish. A semaphore that
// collects permits one at a time without serialising the collectors
// deadlocks here.
func checkSemNoDeadlock(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	const rounds = 200
	errs := make(chan error, 3*rounds)
	finished := elsewhere(3*patience, func() {
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				n := int64(3)
				if g == 2 {
					n = 1
				}
				for range rounds {
					ctx, cancel := context.WithTimeout(bg, 2*patience)
					lease, err := s.Acquire(ctx, n)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("Acquire(%d): %w", n, err)
						return
					}
					runtime.Gosched()
					if err := lease.Release(bg); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
	})
	require.True(t, finished, "two Acquire(3) of 4 and an Acquire(1), %d rounds each, did not finish: deadlock", rounds)
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.NoError(t, probeSem(s, semCapacity))
}

func TestLockConformance(t *testing.T) {
	for _, impl := range Locks() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			for _, c := range lockChecks() {
				if c.fairOnly && !impl.Fair {
					continue
				}
				t.Run(c.name, func(t *testing.T) { c.run(t, impl.New) })
			}
		})
	}
}

func TestSemaphoreConformance(t *testing.T) {
	for _, impl := range Semaphores() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			for _, c := range semaphoreChecks() {
				t.Run(c.name, func(t *testing.T) { c.run(t, impl.New) })
			}
		})
	}
}

// TestLockRegistryNames keeps the lock and semaphore registries fit for
// benchmark names: unique within a family, lower case, no trailing -digits,
// a summary each, and a flaw for each racy control.
func TestLockRegistryNames(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	seen := map[string]bool{}
	for _, l := range Locks() {
		assert.Regexp(t, valid, l.Name)
		assert.False(t, seen["lock "+l.Name], "lock %s registered twice", l.Name)
		seen["lock "+l.Name] = true
		assert.NotEmpty(t, l.Summary, l.Name)
		assert.Equal(t, !l.Guarantee.Correct(), l.Flaw != "", "lock %s: a flaw is stated exactly for racy controls", l.Name)
		got, ok := LockByName(l.Name)
		assert.True(t, ok)
		assert.Equal(t, l.Name, got.Name)
	}
	for _, s := range Semaphores() {
		assert.Regexp(t, valid, s.Name)
		assert.False(t, seen["semaphore "+s.Name], "semaphore %s registered twice", s.Name)
		seen["semaphore "+s.Name] = true
		assert.NotEmpty(t, s.Summary, s.Name)
		assert.Equal(t, !s.Guarantee.Correct(), s.Flaw != "", "semaphore %s: a flaw is stated exactly for racy controls", s.Name)
		got, ok := SemaphoreByName(s.Name)
		assert.True(t, ok)
		assert.Equal(t, s.Name, got.Name)
	}
	_, ok := LockByName("nosuch")
	assert.False(t, ok)
	_, ok = SemaphoreByName("nosuch")
	assert.False(t, ok)
	for _, name := range []string{"naive", "mutex", "reentrant", "spin", "ticket", "channel"} {
		_, ok := LockByName(name)
		assert.True(t, ok, "lock %s", name)
	}
	for _, name := range []string{"naive", "channel", "xsemaphore", "atomic"} {
		_, ok := SemaphoreByName(name)
		assert.True(t, ok, "semaphore %s", name)
	}
}

// lockStressDuration is how long each lock and semaphore stress run lasts,
// before StressScale.
const lockStressDuration = 100 * time.Millisecond

// stressPermits asks for 1, 2 or 3 permits of 4, by goroutine: multi-permit
// requests beside single ones, so that collectors, queue heads that do not
// fit, and the queue behind them are all exercised.
func stressPermits(g int) int64 { return int64(1 + g%3) }

// TestStressLocks runs every correct lock with StressGoroutines goroutines
// at every StressGOMAXPROCS: no critical section may overlap another, no
// token may fail to increase, and once the run's deadline has cancelled
// every waiter, the lock must be free.
func TestStressLocks(t *testing.T) {
	d := lockStressDuration * time.Duration(StressScale())
	for _, impl := range Locks() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			for _, procs := range StressGOMAXPROCS {
				WithGOMAXPROCS(procs, func() {
					l := impl.New()
					run, err := RunLock(l, StressGoroutines, d, WorkRounds)
					require.NoError(t, err, "GOMAXPROCS %d", procs)
					t.Logf("%s, GOMAXPROCS %d: %d acquisitions, p50 %v, p99 %v, max wait %v, Jain fairness %.2f",
						impl.Name, procs, run.Acquisitions, run.P(0.5), run.P(0.99), run.MaxWait, run.JainFairness())
					assert.Positive(t, run.Acquisitions, "GOMAXPROCS %d", procs)
					assert.Zero(t, run.Overlaps, "GOMAXPROCS %d: critical sections overlapped", procs)
					assert.Zero(t, run.TokenRegressions, "GOMAXPROCS %d: tokens did not increase", procs)
					assert.NoError(t, probe(l), "GOMAXPROCS %d: the lock must be free after the run, its cancelled waiters gone", procs)
				})
			}
		})
	}
}

// TestStressSemaphores runs every correct semaphore of capacity 4 with
// StressGoroutines goroutines asking for 1, 2 or 3 permits, at every
// StressGOMAXPROCS: never more than 4 permits held at once, and every
// permit free after the run.
func TestStressSemaphores(t *testing.T) {
	d := lockStressDuration * time.Duration(StressScale())
	for _, impl := range Semaphores() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			for _, procs := range StressGOMAXPROCS {
				WithGOMAXPROCS(procs, func() {
					s, err := impl.New(semCapacity)
					require.NoError(t, err)
					run, err := RunSemaphore(s, StressGoroutines, d, stressPermits)
					require.NoError(t, err, "GOMAXPROCS %d", procs)
					t.Logf("%s, GOMAXPROCS %d: %d acquisitions, most permits held %d of %d, p99 %v, Jain fairness %.2f",
						impl.Name, procs, run.Acquisitions, run.MaxHeld, run.Capacity, run.P(0.99), run.JainFairness())
					assert.Positive(t, run.Acquisitions, "GOMAXPROCS %d", procs)
					assert.LessOrEqual(t, run.MaxHeld, int64(semCapacity), "GOMAXPROCS %d", procs)
					assert.Zero(t, run.Overflows, "GOMAXPROCS %d", procs)
					assert.NoError(t, probeSem(s, semCapacity), "GOMAXPROCS %d: every permit must be free after the run", procs)
				})
			}
		})
	}
}

// racyLockPatience bounds how long TestRacyLockControl retries.
const racyLockPatience = 20 * time.Second

// TestRacyLockControl shows the naive lock letting critical sections
// overlap and the naive semaphore holding more than its capacity. Under
// -race it re-runs itself in a subprocess built without it, as
// TestRacyControl does.
func TestRacyLockControl(t *testing.T) {
	if raceflag.Enabled {
		out, err := goTest(t, "", "CONTEND_RACY=1", "-run", "^TestRacyLockControl$", "-v")
		require.NoError(t, err, "the racy control subprocess failed:\n%s", out)
		assert.Contains(t, out, "naive lock overlapped", "subprocess output:\n%s", out)
		assert.Contains(t, out, "naive semaphore overflowed", "subprocess output:\n%s", out)
		return
	}
	lock, _ := LockByName("naive")
	sem, _ := SemaphoreByName("naive")
	require.Equal(t, Racy, lock.Guarantee)
	require.Equal(t, Racy, sem.Guarantee)
	require.GreaterOrEqual(t, runtime.NumCPU(), 2, "the racy control needs two CPUs to overlap")
	WithGOMAXPROCS(2, func() {
		var run LockRun
		runs := 0
		for deadline := time.Now().Add(racyLockPatience); run.Overlaps == 0 && time.Now().Before(deadline); runs++ {
			var err error
			run, err = RunLock(lock.New(), StressGoroutines, 50*time.Millisecond, WorkRounds)
			require.NoError(t, err)
		}
		if assert.Positive(t, run.Overlaps, "the naive lock never overlapped in %d runs", runs) {
			t.Logf("naive lock overlapped %d times in %d acquisitions (%d token regressions), in run %d",
				run.Overlaps, run.Acquisitions, run.TokenRegressions, runs)
		}

		var srun SemaphoreRun
		runs = 0
		for deadline := time.Now().Add(racyLockPatience); srun.Overflows == 0 && time.Now().Before(deadline); runs++ {
			s, err := sem.New(semCapacity)
			require.NoError(t, err)
			srun, err = RunSemaphore(s, StressGoroutines, 50*time.Millisecond, func(int) int64 { return 1 })
			require.NoError(t, err)
		}
		if assert.Positive(t, srun.Overflows, "the naive semaphore never overflowed in %d runs", runs) {
			t.Logf("naive semaphore overflowed %d times in %d acquisitions, at most %d permits held of %d, in run %d",
				srun.Overflows, srun.Acquisitions, srun.MaxHeld, srun.Capacity, runs)
		}
	})
}
