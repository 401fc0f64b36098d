package contendtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/lockprobe"
	"github.com/contend-lab/contend/linearize"
)

// NewSemaphoreFunc builds a semaphore of capacity permits, or returns a
// *contend.ConfigError for a capacity it refuses.
type NewSemaphoreFunc func(capacity int64) (contend.Semaphore, error)

// Semaphore runs every check of [SemaphoreChecks] on semaphores
// newSemaphore builds, each as a subtest of t, held to what opts declare:
// a semaphore that never has more than Capacity permits held, whose
// fencing tokens strictly increase from holder to holder (unless
// [NoFencing]), and that takes multi-permit requests all or none without
// deadlock. Its leases are an in-process semaphore's: they never expire.
// The stress and linearizability checks set GOMAXPROCS: do not call
// Semaphore from parallel tests.
func Semaphore(t *testing.T, newSemaphore NewSemaphoreFunc, opts ...Option) {
	t.Helper()
	if newSemaphore == nil {
		t.Fatal("contendtest.Semaphore: newSemaphore is nil")
	}
	runAll(t, semaphoreFamily, SemaphoreChecks(), newSemaphore, opts)
}

// SemaphoreChecks returns the semaphore checks, in a stable order: the
// sequential ones, then the concurrent ones. They build semaphores of 4
// permits (2 for tokens-follow-grants), and bad-capacity builds them of 0
// and fewer.
func SemaphoreChecks() []Check[NewSemaphoreFunc] {
	plain := func(name, doc string, check func(require.TestingT, func(int64) (contend.Semaphore, error))) Check[NewSemaphoreFunc] {
		return Check[NewSemaphoreFunc]{name: name, doc: doc, family: semaphoreFamily, run: func(c *checker, ns NewSemaphoreFunc, _ *options) { check(c, ns) }}
	}
	return []Check[NewSemaphoreFunc]{
		plain("bad-capacity", "a capacity below 1 is a *contend.ConfigError naming Semaphore.Capacity, never a panic", checkSemBadCapacity),
		plain("permit-errors", "n <= 0 or n > Capacity is a *contend.PermitError at once, even with every permit held", checkSemPermitErrors),
		plain("try-acquire-all-or-nothing", "a TryAcquire for more than is free takes nothing", checkSemTryAcquire),
		plain("release-twice", "a second Release, and Extend after Release, are ErrNotHeld, and a stale lease gives back nothing", checkSemReleaseTwice),
		plain("tokens-increase", "tokens grow from one acquisition to the next", checkSemTokens),
		plain("extend-and-ttl", "leases never expire; Extend refuses ttl <= 0 and is ErrNotHeld after Release", checkSemExtend),
		plain("cancelled-context", "Acquire with a ctx already done fails with ctx.Err() and takes nothing", checkSemCancelled),
		plain("blocks-at-capacity", "with every permit held Acquire blocks; a waiter for 2 is granted once 2 are free", checkSemBlocksAtCapacity),
		plain("blocked-timeout", "waiters that give up when their contexts expire leave every permit free, even ones they had collected", checkSemBlockedTimeout),
		plain("multi-permit-no-deadlock", "acquirers of 3 permits of 4, two at a time, beside acquirers of 1, all finish", checkSemNoDeadlock),
		{name: "tokens-follow-grants", doc: "a waiter served by a Release has a smaller token than a later TryAcquire (NoFencing: must not)",
			family: semaphoreFamily, run: checkSemTokensFollowGrants},
		{name: "stress", doc: "100 goroutines asking for 1 to 3 permits of 4 at GOMAXPROCS 1, 2 and 8: never more than 4 held, all free after",
			family: semaphoreFamily, run: checkStressSemaphore},
		{name: "linearizable", doc: "histories of 16 goroutines' Acquire, TryAcquire and Release of 1 to 3 permits of 4 are linearizable (porcupine)",
			family: semaphoreFamily, run: checkLinearizableSemaphore},
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
			returned := lockprobe.Elsewhere(lockprobe.Patience, func() {
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
	assert.NoError(t, lockprobe.Semaphore(s, 3), "three free again")
	assert.ErrorIs(t, lockprobe.Semaphore(s, 4), contend.ErrHeld)
	require.NoError(t, one.Release(bg))
	assert.NoError(t, lockprobe.Semaphore(s, 4))
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
	assert.ErrorIs(t, lockprobe.Semaphore(s, 1), contend.ErrHeld, "a stale Release must not give back permits it does not hold")
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
			ctx, cancel := context.WithTimeout(bg, lockprobe.Patience)
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
		assert.NoError(t, lockprobe.Semaphore(s, semCapacity), "every permit must be left free")
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
	require.True(t, lockprobe.Elsewhere(lockprobe.Patience, func() {
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
		ctx, cancel := context.WithTimeout(bg, 10*lockprobe.Patience)
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
	case <-time.After(lockprobe.Patience):
		assert.Fail(t, "Acquire(2) was not granted 2 free permits")
	}
	for _, h := range held[2:] {
		require.NoError(t, h.Release(bg))
	}
	assert.NoError(t, lockprobe.Semaphore(s, semCapacity))
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
		require.True(t, lockprobe.Elsewhere(lockprobe.Patience, func() {
			ctx, cancel := context.WithTimeout(bg, shortTimeout)
			defer cancel()
			var lease contend.Lease
			if lease, err = s.Acquire(ctx, n); lease != nil {
				_ = lease.Release(bg)
			}
		}), "Acquire(%d) with a %v timeout and 1 permit free did not return", n, shortTimeout)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire(%d) with 1 permit free", n)
		assert.NoError(t, lockprobe.Semaphore(s, 1), "the free permit must be free again after Acquire(%d) gave up", n)
	}
	// Together, with waiters for 1 that may be granted the free permit.
	wants := []int64{2, semCapacity, 2, 1, 1}
	errs := make([]error, len(wants))
	returned := lockprobe.Elsewhere(lockprobe.Patience, func() {
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
	require.True(t, returned, "Acquires with a %v timeout did not return within %v", shortTimeout, lockprobe.Patience)
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
	assert.NoError(t, lockprobe.Semaphore(s, semCapacity), "every permit free once the holder released")
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
	finished := lockprobe.Elsewhere(3*lockprobe.Patience, func() {
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
	assert.NoError(t, lockprobe.Semaphore(s, semCapacity))
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

// stressPermits asks for 1, 2 or 3 permits of 4, by goroutine: multi-permit
// requests beside single ones, so that collectors, queue heads that do not
// fit, and the queue behind them are all exercised.
func stressPermits(g int) int64 { return int64(1 + g%3) }

// checkStressSemaphore runs a semaphore of capacity 4 with
// StressGoroutines goroutines asking for 1, 2 or 3 permits, at every
// StressGOMAXPROCS: never more than 4 permits held at once, and every
// permit free after the run.
func checkStressSemaphore(c *checker, ns NewSemaphoreFunc, _ *options) {
	d := lockStressDuration * time.Duration(StressScale())
	for _, procs := range StressGOMAXPROCS {
		WithGOMAXPROCS(procs, func() {
			s := newSem(c, ns)
			run, err := RunSemaphore(s, StressGoroutines, d, stressPermits)
			require.NoError(c, err, "GOMAXPROCS %d", procs)
			c.Logf("GOMAXPROCS %d: %d acquisitions, most permits held %d of %d, p99 %v, Jain fairness %.2f",
				procs, run.Acquisitions, run.MaxHeld, run.Capacity, run.P(0.99), run.JainFairness())
			assert.Positive(c, run.Acquisitions, "GOMAXPROCS %d", procs)
			assert.LessOrEqual(c, run.MaxHeld, int64(semCapacity), "GOMAXPROCS %d", procs)
			assert.Zero(c, run.Overflows, "GOMAXPROCS %d", procs)
			assert.NoError(c, lockprobe.Semaphore(s, semCapacity), "GOMAXPROCS %d: every permit must be free after the run", procs)
		})
	}
}

// semaphoreModel returns the linearizability model of a semaphore of
// capacity permits as opts declare it: with fencing tokens, unless
// NoFencing.
func semaphoreModel(o *options, capacity int64) (porcupine.Model, error) {
	if o.noFencing {
		return linearize.NewUnfencedSemaphore(capacity)
	}
	return linearize.NewSemaphore(capacity)
}

// checkLinearizableSemaphore checks histories of lockClients clients
// asking for 1, 2 or 3 permits of semCapacity at every StressGOMAXPROCS
// against the semaphore model (without fencing, its tokens read as names
// only, if NoFencing).
func checkLinearizableSemaphore(c *checker, ns NewSemaphoreFunc, o *options) {
	model, err := semaphoreModel(o, semCapacity)
	require.NoError(c, err)
	checkAtEveryProcs(c, o, "semaphore", model, func() []porcupine.Operation {
		h, err := RecordSemaphore(newSem(c, ns), lockClients, lockRounds, stressPermits)
		require.NoError(c, err)
		return h
	})
}

// recordServedBeforeTry records, on one P so that nothing runs unless the
// check's goroutine blocks, the history that tells whether a semaphore of
// 2 permits draws a lease's token with its permits (issue 13's token
// order): client 0 holds both permits; client 1 parks in Acquire(1);
// client 0's Release serves client 1 one permit, which then holds it
// though its goroutine has not run yet; TryAcquire(2) finds one permit
// free (held); TryAcquire(1) takes the last one, or is held because client
// 1 is served first; then client 1 runs and returns its lease. The held
// TryAcquire(2) places client 1's grant before it, and so before the
// TryAcquire(1): a semaphore that draws tokens after taking the permits
// gives the TryAcquire(1) the smaller token. It returns the history and
// the two leases' tokens (0 for a TryAcquire(1) that was held).
func recordServedBeforeTry(c *checker, s contend.Semaphore) (h []porcupine.Operation, served, try uint64) {
	require.Equal(c, int64(2), s.Capacity())
	rec := linearize.NewRecorder(3)
	WithGOMAXPROCS(1, func() {
		o := rec.Call(0, linearize.LockInput{Op: linearize.Acquire, N: 2})
		holder, err := s.Acquire(bg, 2)
		require.NoError(c, err)
		o.Return(linearize.LockOutput{Token: holder.Token()})
		ctx, cancel := context.WithTimeout(bg, lockprobe.Patience)
		defer cancel()
		waiter := make(chan contend.Lease, 1)
		go func() {
			o := rec.Call(1, linearize.LockInput{Op: linearize.Acquire, N: 1})
			l, err := s.Acquire(ctx, 1)
			if err != nil {
				close(waiter)
				return
			}
			o.Return(linearize.LockOutput{Token: l.Token()})
			waiter <- l
		}()
		time.Sleep(10 * time.Millisecond) // the only P runs the waiter until it parks
		o = rec.Call(0, linearize.LockInput{Op: linearize.Release, Token: holder.Token()})
		require.NoError(c, holder.Release(bg))
		o.Return(linearize.LockOutput{})
		o = rec.Call(0, linearize.LockInput{Op: linearize.TryAcquire, N: 2})
		_, err = s.TryAcquire(bg, 2)
		require.ErrorIs(c, err, contend.ErrHeld, "TryAcquire(2) with one permit free")
		o.Return(linearize.LockOutput{Outcome: linearize.Held})
		o = rec.Call(2, linearize.LockInput{Op: linearize.TryAcquire, N: 1})
		l, err := s.TryAcquire(bg, 1)
		if errors.Is(err, contend.ErrHeld) {
			o.Return(linearize.LockOutput{Outcome: linearize.Held})
		} else {
			require.NoError(c, err)
			try = l.Token()
			o.Return(linearize.LockOutput{Token: try})
		}
		w, ok := <-waiter
		require.True(c, ok, "the waiter's Acquire(1) failed")
		served = w.Token()
	})
	return rec.History(), served, try
}

// checkSemTokensFollowGrants is the regression test of issue 13's token
// order, one deterministic interleaving: a lease whose permits were taken
// first has the smaller token, and the history is linearizable under the
// model with tokens. A semaphore declared NoFencing must still deviate,
// so that the declaration is dropped once it is fixed.
func checkSemTokensFollowGrants(c *checker, ns NewSemaphoreFunc, o *options) {
	fenced, err := linearize.NewSemaphore(2)
	require.NoError(c, err)
	s, err := ns(2)
	require.NoError(c, err)
	h, served, try := recordServedBeforeTry(c, s)
	v := checkHistory(c, &linearize.Summary{Family: "semaphore", Scenario: "served, then TryAcquire"}, fenced, h)
	if o.noFencing {
		require.NotZero(c, try, "the TryAcquire(1) after the waiter was served")
		assert.Less(c, try, served, "declared NoFencing, but the later TryAcquire's token is no longer the smaller: drop NoFencing")
		assert.Equal(c, porcupine.Illegal, v.Result, "declared NoFencing, but the history is linearizable with tokens")
		return
	}
	if try != 0 {
		assert.Greater(c, try, served, "the waiter's permits were taken first (inside the Release), so its token must be the smaller")
	}
	assert.Equal(c, porcupine.Ok, v.Result)
}
