package harness

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

// The context rules of contend.Lock and contend.Semaphore, checked on every
// registered in-process implementation: a ctx that is done already makes
// Acquire and TryAcquire fail even on a free lock, and a ctx that ended
// before the release an Acquire waits for makes it fail
// (go.dev/issue/63615).

// cancelledRounds is how many rounds each implementation runs of the
// cancelled-before-release tests. The wrong outcome needs the waiter to be
// woken by the release and by ctx before it looks, which happens in a few
// rounds per 100,000 for the semaphores x/sync's test was written for, so
// fewer rounds would miss it; a round takes microseconds.
const cancelledRounds = 100_000

// cancelledBudget bounds each implementation's rounds in time, so that a
// slow machine (or -race) runs fewer rounds instead of timing out; the
// test logs how many it ran.
const cancelledBudget = 2 * time.Second

var errGranted = errors.New("granted a lease although ctx ended before the release")

// TestTryAcquireCancelledContext: TryAcquire with a ctx that is done
// already returns ctx.Err() (wrapped) and takes nothing, on a free lock
// and with every permit free, for every registered lock and semaphore
// (the racy controls included: one goroutine, so they behave).
func TestTryAcquireCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	expired, cancelExpired := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancelExpired()
	ctxs := []struct {
		name string
		ctx  context.Context
		want error
	}{{"cancelled", ctx, context.Canceled}, {"expired", expired, context.DeadlineExceeded}}
	for _, impl := range Locks() {
		for _, c := range ctxs {
			t.Run("lock/"+impl.Name+"/"+c.name, func(t *testing.T) {
				l := impl.New()
				lease, err := l.TryAcquire(c.ctx)
				assert.ErrorIs(t, err, c.want)
				assert.NotErrorIs(t, err, contend.ErrHeld)
				assert.Nil(t, lease)
				assert.NoError(t, probe(l), "the lock must be left free")
			})
		}
	}
	for _, impl := range Semaphores() {
		for _, c := range ctxs {
			t.Run("semaphore/"+impl.Name+"/"+c.name, func(t *testing.T) {
				s, err := impl.New(semCapacity)
				require.NoError(t, err)
				for _, n := range []int64{1, semCapacity} {
					lease, err := s.TryAcquire(c.ctx, n)
					assert.ErrorIs(t, err, c.want, "TryAcquire(%d)", n)
					assert.Nil(t, lease, "TryAcquire(%d)", n)
					assert.NoError(t, probeSem(s, semCapacity), "every permit must be left free")
				}
				var pe *contend.PermitError
				_, err = s.TryAcquire(c.ctx, semCapacity+1)
				assert.ErrorAs(t, err, &pe, "an impossible request is a PermitError whatever ctx")
			})
		}
	}
}

// TestSemaphoreAcquireCancelledBeforeRelease is x/sync's
// TestWeightedAcquireCanceled (go.dev/issue/63615), on every correct
// semaphore: with 1 of 2 permits held, Acquire(ctx, 2) queues; ctx is
// cancelled and then the permit released, so ctx's end happened before
// enough permits were free, and the Acquire must fail. Afterwards both
// permits are free, and an Acquire with the cancelled ctx fails even with
// permits free.
func TestSemaphoreAcquireCancelledBeforeRelease(t *testing.T) {
	for _, impl := range Semaphores() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			s, err := impl.New(2)
			require.NoError(t, err)
			var granted, rounds int
			var other error
			deadline := time.Now().Add(cancelledBudget)
			for ; rounds < cancelledRounds && time.Now().Before(deadline); rounds++ {
				held, err := s.Acquire(bg, 1)
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(bg)
				released := make(chan error, 1)
				go func() {
					// Wait until the Acquire(2) below queues: from then on
					// TryAcquire(1) fails although one permit is free.
					for {
						lease, err := s.TryAcquire(bg, 1)
						if err != nil {
							break
						}
						_ = lease.Release(bg)
						runtime.Gosched()
					}
					cancel()
					released <- held.Release(bg)
				}()
				lease, err := s.Acquire(ctx, 2)
				require.NoError(t, <-released)
				switch {
				case err == nil:
					granted++
					require.NoError(t, lease.Release(bg))
				case !errors.Is(err, context.Canceled):
					other = err
				}
				require.NoError(t, probeSem(s, 2), "round %d: both permits must be free after the cancelled Acquire", rounds)
				_, err = s.Acquire(ctx, 1)
				require.ErrorIs(t, err, context.Canceled, "round %d: Acquire with a cancelled ctx and permits free", rounds)
			}
			t.Logf("%s: %d rounds", impl.Name, rounds)
			assert.Zero(t, granted, "Acquire(ctx, 2) returned a lease in %d of %d rounds although ctx was cancelled before the permit was released", granted, rounds)
			assert.NoError(t, other)
		})
	}
}

// TestLockAcquireCancelledBeforeRelease is the same rule for every correct
// lock: a waiter's ctx is cancelled and then the holder releases, so the
// waiter must fail, however far it had got (each round lets it run a
// different number of scheduling rounds before the cancel). The waiter is
// its own goroutine, so that a reentrant lock does not simply nest.
func TestLockAcquireCancelledBeforeRelease(t *testing.T) {
	for _, impl := range Locks() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			l := impl.New()
			var granted, rounds int
			var other error
			deadline := time.Now().Add(cancelledBudget)
			for ; rounds < cancelledRounds && time.Now().Before(deadline); rounds++ {
				holder, err := l.Acquire(bg)
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(bg)
				started := make(chan struct{})
				got := make(chan error, 1)
				go func() {
					close(started)
					lease, err := l.Acquire(ctx)
					if err == nil {
						err = errGranted
						_ = lease.Release(bg) // a reentrant lease is released by its goroutine
					}
					got <- err
				}()
				<-started
				for range rounds % 4 {
					runtime.Gosched()
				}
				cancel()
				require.NoError(t, holder.Release(bg))
				switch err := <-got; {
				case errors.Is(err, errGranted):
					granted++
				case !errors.Is(err, context.Canceled):
					other = err
				}
			}
			t.Logf("%s: %d rounds", impl.Name, rounds)
			assert.Zero(t, granted, "Acquire(ctx) returned a lease in %d of %d rounds although ctx was cancelled before the holder released", granted, rounds)
			assert.NoError(t, other)
			assert.NoError(t, probe(l), "the lock must be free after the rounds")
		})
	}
}
