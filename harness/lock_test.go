package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	atomicsem "github.com/contend-lab/contend/impls/cas"
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
		var ce *contend.ConfigError
		if assert.ErrorAs(t, err, &ce, "capacity %d: a *contend.ConfigError, as a bucket's", c) {
			assert.Equal(t, "Capacity", ce.Field, "capacity %d", c)
			assert.Equal(t, c, ce.Value, "capacity %d", c)
			assert.Contains(t, err.Error(), "Semaphore.Capacity", "capacity %d", c)
		}
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

// checkSemBlockedTimeout: waiters for 2 and for every permit, alone and
// then together with waiters for 1, give up when their contexts expire,
// and leave every permit free afterwards, including any they had collected.
func checkSemBlockedTimeout(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	holder, err := s.Acquire(bg, 3)
	require.NoError(t, err)
	// One at a time: a waiter for 2 or 4 may collect the free permit before
	// it gives up; it must give it back.
	for _, n := range []int64{2, semCapacity} {
		var err error
		require.True(t, elsewhere(patience, func() {
			ctx, cancel := context.WithTimeout(bg, shortTimeout)
			defer cancel()
			var lease contend.Lease
			if lease, err = s.Acquire(ctx, n); lease != nil {
				_ = lease.Release(bg)
			}
		}), "Acquire(%d) with a %v timeout and 1 permit free did not return", n, shortTimeout)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire(%d) with 1 permit free", n)
		assert.NoError(t, probeSem(s, 1), "the free permit must be free again after Acquire(%d) gave up", n)
	}
	// Together, with waiters for 1 that may be granted the free permit.
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
// deadlocks here: first deterministically (semReleasedToTwoCollectors),
// then in rounds where the scheduler decides the interleaving.
// deadlockTimeout bounds each Acquire of checkSemNoDeadlock: one that
// takes this long is deadlocked (undeadlocked, each takes microseconds).
const deadlockTimeout = time.Second

func checkSemNoDeadlock(t require.TestingT, newSemFn func(int64) (contend.Semaphore, error)) {
	s := newSem(t, newSemFn)
	semReleasedToTwoCollectors(t, s)
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
					ctx, cancel := context.WithTimeout(bg, deadlockTimeout)
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

// semReleasedToTwoCollectors is the interleaving that deadlocks collectors
// that are not serialised, made on one P, where nothing runs while the
// test goroutine does not block, so that the scheduler cannot avoid it
// (even the race detector's, which shuffles the order of runnable
// goroutines): four holders take one permit each, two Acquire(3) park,
// two holders release, both acquirers park again, and the other two
// release. A semaphore that collects one permit per channel send hands one
// permit of each pair to each collector: each then holds 2 and waits
// forever for a third. A correct one gives both their 3 permits, one
// after the other.
func semReleasedToTwoCollectors(t require.TestingT, s contend.Semaphore) {
	errs := make(chan error, 2)
	WithGOMAXPROCS(1, func() {
		holders := make([]contend.Lease, semCapacity)
		for i := range holders {
			var err error
			holders[i], err = s.Acquire(bg, 1)
			require.NoError(t, err)
		}
		for range 2 {
			go func() {
				ctx, cancel := context.WithTimeout(bg, deadlockTimeout)
				defer cancel()
				lease, err := s.Acquire(ctx, 3)
				if err == nil {
					runtime.Gosched()
					err = lease.Release(bg)
				}
				errs <- err
			}()
		}
		for _, pair := range [][]contend.Lease{holders[:2], holders[2:]} {
			time.Sleep(10 * time.Millisecond) // the only P runs both acquirers until they park
			for _, h := range pair {
				require.NoError(t, h.Release(bg))
			}
		}
		for range 2 {
			assert.NoError(t, <-errs, "Acquire(3) of 4 by one of two collectors, with the 4 permits released two at a time")
		}
	})
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
	// One row per registered lock and semaphore, so that both registries
	// are held to the same checks.
	type entry struct {
		family, name, summary, flaw string
		guarantee                   Guarantee
		byName                      func(string) (string, bool)
	}
	lockByName := func(n string) (string, bool) { l, ok := LockByName(n); return l.Name, ok }
	semaphoreByName := func(n string) (string, bool) { s, ok := SemaphoreByName(n); return s.Name, ok }
	var entries []entry
	for _, l := range Locks() {
		entries = append(entries, entry{"lock", l.Name, l.Summary, l.Flaw, l.Guarantee, lockByName})
	}
	for _, s := range Semaphores() {
		entries = append(entries, entry{"semaphore", s.Name, s.Summary, s.Flaw, s.Guarantee, semaphoreByName})
	}
	valid := regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.family + " " + e.name
		assert.Regexp(t, valid, e.name)
		assert.False(t, seen[key], "%s registered twice", key)
		seen[key] = true
		assert.NotEmpty(t, e.summary, key)
		assert.Equal(t, !e.guarantee.Correct(), e.flaw != "", "%s: a flaw is stated exactly for racy controls", key)
		got, ok := e.byName(e.name)
		assert.True(t, ok, key)
		assert.Equal(t, e.name, got, key)
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
	if rerunWithoutRace(t, "naive lock overlapped", "naive semaphore overflowed") {
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

// recorder is a require.TestingT that records failures instead of failing
// a test, so that TestLockChecksCatchFaults can run a check on a faulty
// implementation and assert that it fails. FailNow unwinds the check with
// a panic that record recovers.
type recorder struct {
	mu       sync.Mutex
	failures []string
}

type failNow struct{}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) FailNow() { panic(failNow{}) }

// record runs check against a recorder and returns its failures.
func record(check func(t require.TestingT)) []string {
	r := &recorder{}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(failNow); !ok {
					panic(p)
				}
			}
		}()
		check(r)
	}()
	return r.failures
}

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

func (s *faultyLease) Release(context.Context) error {
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

// TestLockChecksCatchFaults runs each conformance check on an
// implementation with the fault it looks for, and asserts that it fails;
// and runs every check on the same implementations without a fault, and
// asserts that they pass, so that what is caught is the fault.
func TestLockChecksCatchFaults(t *testing.T) {
	t.Run("lock-control", func(t *testing.T) {
		for _, c := range lockChecks() {
			assert.Empty(t, record(func(r require.TestingT) { c.run(r, func() contend.Lock { return newFaultyLock("") }) }), c.name)
		}
	})
	t.Run("semaphore-control", func(t *testing.T) {
		for _, c := range semaphoreChecks() {
			assert.Empty(t, record(func(r require.TestingT) { c.run(r, newFaultySemaphore("")) }), c.name)
		}
	})
	lockCases := []struct{ fault, check string }{
		{"ignores-cancelled-context", "cancelled-context"},
		{"leaks-on-cancel", "blocked-timeout"},
		{"release-twice-frees", "release-twice"},
		{"repeated-tokens", "tokens-increase"},
		{"extend-accepts-anything", "extend-and-ttl"},
	}
	for _, tc := range lockCases {
		t.Run("lock/"+tc.fault, func(t *testing.T) {
			i := slices.IndexFunc(lockChecks(), func(c lockCheck) bool { return c.name == tc.check })
			require.GreaterOrEqual(t, i, 0, "no check %s", tc.check)
			failures := record(func(r require.TestingT) {
				lockChecks()[i].run(r, func() contend.Lock { return newFaultyLock(tc.fault) })
			})
			if assert.NotEmpty(t, failures, "check %s passed a lock with fault %s", tc.check, tc.fault) {
				t.Logf("%s caught %s: %s", tc.check, tc.fault, firstLine(failures[0]))
			}
		})
	}
	semCases := []struct{ fault, check string }{
		{"no-permit-error", "permit-errors"},
		{"plain-capacity-error", "bad-capacity"},
		{"keeps-permits-on-cancel", "blocked-timeout"},
		{"unserialised", "multi-permit-no-deadlock"},
	}
	for _, tc := range semCases {
		t.Run("semaphore/"+tc.fault, func(t *testing.T) {
			i := slices.IndexFunc(semaphoreChecks(), func(c semaphoreCheck) bool { return c.name == tc.check })
			require.GreaterOrEqual(t, i, 0, "no check %s", tc.check)
			failures := record(func(r require.TestingT) { semaphoreChecks()[i].run(r, newFaultySemaphore(tc.fault)) })
			if assert.NotEmpty(t, failures, "check %s passed a semaphore with fault %s", tc.check, tc.fault) {
				t.Logf("%s caught %s: %s", tc.check, tc.fault, firstLine(failures[0]))
			}
		})
	}

	t.Run("run/no-exclusion", func(t *testing.T) {
		var run LockRun
		WithGOMAXPROCS(2, func() {
			for try := 0; try < 10 && run.Overlaps == 0; try++ {
				var err error
				run, err = RunLock(newFaultyLock("no-exclusion"), StressGoroutines, 50*time.Millisecond, 8*WorkRounds)
				require.NoError(t, err)
			}
		})
		assert.Positive(t, run.Overlaps, "RunLock must see critical sections of a lock that excludes nobody overlap")
	})
	t.Run("run/repeated-tokens", func(t *testing.T) {
		run, err := RunLock(newFaultyLock("repeated-tokens"), 2, 20*time.Millisecond, 0)
		require.NoError(t, err)
		require.Greater(t, run.Acquisitions, int64(1))
		assert.Equal(t, run.Acquisitions-1, run.TokenRegressions, "every lease after the first repeats token 1")
		assert.Zero(t, run.Overlaps)
	})
	t.Run("run/over-admits", func(t *testing.T) {
		s, err := atomicsem.NewSemaphore(semCapacity + 1)
		require.NoError(t, err)
		WithGOMAXPROCS(1, func() {
			run, err := RunSemaphore(overAdmitting{s}, StressGoroutines, 50*time.Millisecond, func(int) int64 { return 1 })
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
