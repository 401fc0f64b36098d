package contendtest

import (
	"context"
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

// Lock runs every check of [LockChecks] on locks newLock builds, each as
// a subtest of t, held to what opts declare: a lock that never has two
// live leases, whose fencing tokens strictly increase from holder to
// holder (unless [NoFencing]), that keeps the exact TryAcquire rule of
// [contend.Lock] (unless [WeakTryAcquire]) and, if [FIFO], serves waiters
// in arrival order. Its leases are an in-process lock's: they never
// expire. The stress and linearizability checks set GOMAXPROCS: do not
// call Lock from parallel tests.
func Lock(t *testing.T, newLock func() contend.Lock, opts ...Option) {
	t.Helper()
	if newLock == nil {
		t.Fatal("contendtest.Lock: newLock is nil")
	}
	runAll(t, lockFamily, LockChecks(), newLock, opts)
}

// LockChecks returns the lock checks, in a stable order: the sequential
// ones, then the concurrent ones.
func LockChecks() []Check[func() contend.Lock] {
	plain := func(name, doc string, check func(require.TestingT, func() contend.Lock)) Check[func() contend.Lock] {
		return Check[func() contend.Lock]{name: name, doc: doc, family: lockFamily, run: func(c *checker, nl func() contend.Lock, _ *options) { check(c, nl) }}
	}
	return []Check[func() contend.Lock]{
		plain("try-acquire", "TryAcquire takes a free lock, and is ErrHeld from another goroutine while it is held", checkLockTryAcquire),
		plain("release-twice", "a second Release, and Extend after Release, are ErrNotHeld, and a stale lease frees nothing", checkLockReleaseTwice),
		plain("tokens-increase", "tokens grow from one acquisition to the next, by any path and from any goroutine", checkLockTokens),
		plain("extend-and-ttl", "leases never expire; Extend refuses ttl <= 0 and is ErrNotHeld after Release", checkLockExtend),
		plain("cancelled-context", "Acquire with a ctx already done fails with ctx.Err() and leaves the lock free", checkLockCancelled),
		plain("blocked-timeout", "waiters behind a holder give up when their contexts expire and leave the lock as they found it", checkLockBlockedTimeout),
		plain("blocked-granted", "a waiter blocks while the lock is held and is granted it, with a greater token, on release", checkLockBlockedGranted),
		{name: "fifo", doc: "FIFO: waiters queued one after another are granted the lock in that order",
			family: lockFamily, run: func(c *checker, nl func() contend.Lock, o *options) {
				if !o.fifo {
					c.skip("not declared FIFO")
				}
				checkLockFIFO(c, nl)
			}},
		{name: "stress", doc: "100 goroutines at GOMAXPROCS 1, 2 and 8: no two critical sections overlap, tokens increase, the lock is free after",
			family: lockFamily, run: checkStressLock},
		{name: "linearizable", doc: "histories of 16 goroutines' Acquire, TryAcquire and Release at GOMAXPROCS 1, 2 and 8 are linearizable (porcupine)",
			family: lockFamily, run: checkLinearizableLock},
	}
}

var bg = context.Background()

// shortTimeout is the context timeout of Acquires that are meant to expire.
const shortTimeout = 50 * time.Millisecond

func checkLockTryAcquire(t require.TestingT, newLock func() contend.Lock) {
	l := newLock()
	lease, err := l.TryAcquire(bg)
	require.NoError(t, err, "TryAcquire on a free lock")
	require.NotNil(t, lease)
	assert.ErrorIs(t, lockprobe.Lock(l), contend.ErrHeld, "TryAcquire from another goroutine while it is held")
	require.NoError(t, lease.Release(bg))
	assert.NoError(t, lockprobe.Lock(l), "TryAcquire once released")
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
	assert.ErrorIs(t, lockprobe.Lock(l), contend.ErrHeld, "a stale lease's Release must not free the holder's lock")
	require.NoError(t, holder.Release(bg))
	assert.NoError(t, lockprobe.Lock(l))
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
			ctx, cancel := context.WithTimeout(bg, lockprobe.Patience)
			lease, err = l.Acquire(ctx)
			cancel()
		case 2:
			lease, err = l.TryAcquire(bg)
		case 3: // from another goroutine, released there
			var tok uint64
			require.True(t, lockprobe.Elsewhere(lockprobe.Patience, func() {
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
	assert.NoError(t, lockprobe.Lock(l), "the lock must be left free")

	ctx, cancel = context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel()
	lease, err = l.Acquire(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "Acquire with an expired context")
	assert.Nil(t, lease)
	assert.NoError(t, lockprobe.Lock(l), "the lock must be left free")
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
	returned := lockprobe.Elsewhere(lockprobe.Patience, func() {
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
	require.True(t, returned, "Acquires with a %v timeout behind a holder did not return within %v", shortTimeout, lockprobe.Patience)
	assert.GreaterOrEqual(t, time.Since(start), shortTimeout, "they returned before their contexts expired")
	for i, err := range errs {
		assert.ErrorIs(t, err, context.DeadlineExceeded, "waiter %d", i)
	}
	assert.ErrorIs(t, lockprobe.Lock(l), contend.ErrHeld, "the holder still holds")
	require.NoError(t, holder.Release(bg))

	// Usable: the waiters that gave up left nothing held or queued.
	assert.NoError(t, lockprobe.Lock(l), "TryAcquire after the holder released")
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
				ctx, cancel = context.WithTimeout(bg, 10*lockprobe.Patience)
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
		case <-time.After(lockprobe.Patience):
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
			ctx, cancel := context.WithTimeout(bg, lockprobe.Patience)
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
		case <-time.After(lockprobe.Patience):
			require.Fail(t, "a waiter was never granted the lock", "granted so far: %v", got)
		}
	}
	assert.Equal(t, []int{0, 1, 2, 3}, got, "grant order of waiters queued in order 0..3")
}

// lockStressDuration is how long each lock and semaphore stress run lasts,
// before StressScale.
const lockStressDuration = 100 * time.Millisecond

// checkStressLock runs StressGoroutines goroutines at every
// StressGOMAXPROCS: no critical section may overlap another, no token may
// fail to increase (unless NoFencing), and once the run's deadline has
// cancelled every waiter, the lock must be free.
func checkStressLock(c *checker, nl func() contend.Lock, o *options) {
	d := lockStressDuration * time.Duration(StressScale())
	for _, procs := range StressGOMAXPROCS {
		WithGOMAXPROCS(procs, func() {
			l := nl()
			run, err := RunLock(l, StressGoroutines, d, WorkRounds)
			require.NoError(c, err, "GOMAXPROCS %d", procs)
			c.Logf("GOMAXPROCS %d: %d acquisitions, p50 %v, p99 %v, max wait %v, Jain fairness %.2f",
				procs, run.Acquisitions, run.P(0.5), run.P(0.99), run.MaxWait, run.JainFairness())
			assert.Positive(c, run.Acquisitions, "GOMAXPROCS %d", procs)
			assert.Zero(c, run.Overlaps, "GOMAXPROCS %d: critical sections overlapped", procs)
			if !o.noFencing {
				assert.Zero(c, run.TokenRegressions, "GOMAXPROCS %d: tokens did not increase", procs)
			}
			assert.NoError(c, lockprobe.Lock(l), "GOMAXPROCS %d: the lock must be free after the run, its cancelled waiters gone", procs)
		})
	}
}

// lockModel returns the linearizability model of a lock as opts declare it.
func lockModel(o *options) porcupine.Model {
	var rules linearize.LockRules
	if !o.noFencing {
		rules |= linearize.Fenced
	}
	if o.weakTry != "" {
		rules |= linearize.WeakTryAcquire
	}
	return linearize.NewLock(rules)
}

// checkLinearizableLock checks histories of Acquire, TryAcquire and
// Release by lockClients clients (spinFIFOClients for a lock that
// SpinsFIFO) at every StressGOMAXPROCS against the lock model.
func checkLinearizableLock(c *checker, nl func() contend.Lock, o *options) {
	clients := lockClients
	if o.spinsFIFO {
		clients = spinFIFOClients
	}
	checkAtEveryProcs(c, o, "lock", lockModel(o), func() []porcupine.Operation {
		h, err := RecordLock(nl(), clients, lockRounds)
		require.NoError(c, err)
		return h
	})
}
