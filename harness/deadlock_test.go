package harness

// Deadlock demonstrations. Each runs on every correct lock in the registry,
// and each asserts its outcome within a bounded time: a deadlock here is
// detected by a context timeout, never by a test that hangs.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/mutex"
)

// deadlockWait is the Acquire timeout that turns a deadlock into an
// error.
const deadlockWait = 200 * time.Millisecond

// deadlockBound bounds every demonstration's wall time.
const deadlockBound = 2 * time.Second

// correctLocks returns the registered locks held to exclusion.
func correctLocks() []LockImpl {
	var locks []LockImpl
	for _, l := range Locks() {
		if l.Guarantee.Correct() {
			locks = append(locks, l)
		}
	}
	return locks
}

// lockPairOutcome is what one goroutine of a two-lock demonstration saw.
type lockPairOutcome struct {
	secondErr  error         // the Acquire of its second lock
	waited     time.Duration // how long that Acquire took
	releaseErr error
}

// takeTwo has two goroutines each take its first lock, wait at a barrier
// until both hold one, then Acquire its second with a deadlockWait timeout,
// and release whatever it holds. order[g] is goroutine g's pair of lock
// indexes into locks. It returns each goroutine's outcome, or false if they
// did not finish within deadlockBound.
func takeTwo(locks [2]contend.Lock, order [2][2]int) ([2]lockPairOutcome, bool) {
	var out [2]lockPairOutcome
	var holdFirst sync.WaitGroup
	holdFirst.Add(2)
	finished := elsewhere(deadlockBound, func() {
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				first, err := locks[order[g][0]].Acquire(bg)
				holdFirst.Done()
				if err != nil {
					out[g].secondErr = err
					return
				}
				holdFirst.Wait()    // barrier: both hold their first lock
				start := time.Now() // before the ctx, whose timer starts with it
				ctx, cancel := context.WithTimeout(bg, deadlockWait)
				defer cancel()
				second, err := locks[order[g][1]].Acquire(ctx)
				out[g].waited = time.Since(start)
				out[g].secondErr = err
				if second != nil {
					out[g].releaseErr = errors.Join(out[g].releaseErr, second.Release(bg))
				}
				out[g].releaseErr = errors.Join(out[g].releaseErr, first.Release(bg))
			})
		}
		wg.Wait()
	})
	return out, finished
}

// TestDeadlockOppositeOrder: goroutine 0 holds A and wants B, goroutine 1
// holds B and wants A. Without a timeout they would wait for each other
// forever; with one, at least one Acquire fails with
// context.DeadlineExceeded (the other may then get its lock as the loser
// releases), and everything is released.
func TestDeadlockOppositeOrder(t *testing.T) {
	for _, impl := range correctLocks() {
		t.Run(impl.Name, func(t *testing.T) {
			locks := [2]contend.Lock{impl.New(), impl.New()}
			out, finished := takeTwo(locks, [2][2]int{{0, 1}, {1, 0}})
			require.True(t, finished, "the deadlocked goroutines did not give up within %v", deadlockBound)
			timedOut := 0
			for g, o := range out {
				assert.NoError(t, o.releaseErr, "goroutine %d", g)
				if errors.Is(o.secondErr, context.DeadlineExceeded) {
					timedOut++
					assert.GreaterOrEqual(t, o.waited, deadlockWait, "goroutine %d gave up before its timeout", g)
				} else {
					assert.NoError(t, o.secondErr, "goroutine %d", g)
				}
			}
			assert.GreaterOrEqual(t, timedOut, 1, "locks taken in opposite order under a barrier must deadlock until a timeout")
			for i, l := range locks {
				assert.NoError(t, probe(l), "lock %c must be free afterwards", 'A'+i)
			}
			t.Logf("%s: goroutine 0 holds A and wants B, goroutine 1 holds B and wants A: %d of 2 Acquires timed out after %v (%v, %v): deadlock detected by timeout, both locks released and free",
				impl.Name, timedOut, deadlockWait, out[0].secondErr, out[1].secondErr)
		})
	}
}

// TestDeadlockConsistentOrder: the same two goroutines and barrier, but
// both take A before B. The one that gets A first also gets B and
// releases both; the other waits for A and then gets B. Both succeed.
func TestDeadlockConsistentOrder(t *testing.T) {
	for _, impl := range correctLocks() {
		t.Run(impl.Name, func(t *testing.T) {
			locks := [2]contend.Lock{impl.New(), impl.New()}
			var out [2]lockPairOutcome
			start := time.Now()
			finished := elsewhere(deadlockBound, func() {
				var wg sync.WaitGroup
				ready := make(chan struct{})
				for g := range 2 {
					wg.Go(func() {
						<-ready // both start together
						ctx, cancel := context.WithTimeout(bg, deadlockBound)
						defer cancel()
						a, err := locks[0].Acquire(ctx)
						if err != nil {
							out[g].secondErr = err
							return
						}
						b, err := locks[1].Acquire(ctx)
						out[g].secondErr = err
						if b != nil {
							out[g].releaseErr = b.Release(bg)
						}
						out[g].releaseErr = errors.Join(out[g].releaseErr, a.Release(bg))
					})
				}
				close(ready)
				wg.Wait()
			})
			elapsed := time.Since(start)
			require.True(t, finished, "two goroutines taking A then B did not finish within %v", deadlockBound)
			for g, o := range out {
				assert.NoError(t, o.secondErr, "goroutine %d", g)
				assert.NoError(t, o.releaseErr, "goroutine %d", g)
			}
			for i, l := range locks {
				assert.NoError(t, probe(l), "lock %c must be free afterwards", 'A'+i)
			}
			t.Logf("%s: both goroutines take A then B: both succeeded in %v, no deadlock", impl.Name, elapsed.Round(time.Microsecond))
		})
	}
}

// TestDeadlockSelf: a goroutine that holds a lock and acquires it again.
// sync.Mutex.Lock would block forever here (sync.Mutex is not reentrant,
// and a test cannot leave a goroutine blocked forever, so it is not run);
// every non-reentrant lock's Acquire with a deadlockWait timeout fails with
// context.DeadlineExceeded instead, and the lock stays held by its holder.
// The reentrant lock returns at once with a lease one level deeper.
func TestDeadlockSelf(t *testing.T) {
	for _, impl := range correctLocks() {
		t.Run(impl.Name, func(t *testing.T) {
			l := impl.New()
			// Everything runs on one goroutine, the holder's (a reentrant
			// lease must be released by it), bounded by deadlockBound;
			// the assertions follow.
			var (
				outerErr, innerErr         error
				inner                      contend.Lease
				waited                     time.Duration
				heldInside, heldAfter      error // probes while nested, and after the inner lease's release
				innerRelease, outerRelease error
			)
			finished := elsewhere(deadlockBound, func() {
				outer, err := l.Acquire(bg)
				if outerErr = err; err != nil {
					return
				}
				start := time.Now() // before the ctx, whose timer starts with it
				ctx, cancel := context.WithTimeout(bg, deadlockWait)
				defer cancel()
				inner, innerErr = l.Acquire(ctx)
				waited = time.Since(start)
				heldInside = probe(l)
				if inner != nil {
					innerRelease = inner.Release(bg)
				}
				heldAfter = probe(l)
				outerRelease = outer.Release(bg)
			})
			require.True(t, finished, "a self-deadlocked Acquire must give up at its %v timeout; it was still blocked after %v", deadlockWait, deadlockBound)
			require.NoError(t, outerErr)
			assert.NoError(t, outerRelease)
			assert.NoError(t, probe(l), "free once the holder released")

			if impl.Name == "reentrant" {
				require.NoError(t, innerErr, "the holder re-acquires a reentrant lock at once")
				nested, ok := inner.(*mutex.ReentrantLease)
				require.True(t, ok, "the reentrant lock's lease is a *mutex.ReentrantLease, not %T", inner)
				assert.Equal(t, 2, nested.Depth())
				assert.Less(t, waited, deadlockWait, "a reentrant Acquire by the holder does not wait")
				assert.ErrorIs(t, heldInside, contend.ErrHeld, "held while nested")
				assert.NoError(t, innerRelease)
				assert.ErrorIs(t, heldAfter, contend.ErrHeld, "still held by the outer lease once the inner one is released")
				t.Logf("%s: the holder acquired it again in %v, at depth 2; free once both leases were released",
					impl.Name, waited.Round(time.Microsecond))
				return
			}
			assert.ErrorIs(t, innerErr, context.DeadlineExceeded, "re-Acquire by the holder of a non-reentrant lock deadlocks until its timeout")
			assert.Nil(t, inner)
			assert.GreaterOrEqual(t, waited, deadlockWait)
			assert.ErrorIs(t, heldAfter, contend.ErrHeld, "the failed re-Acquire leaves the holder holding")
			t.Logf("%s: the holder's second Acquire gave up after %v (%v): self-deadlock detected by timeout, where sync.Mutex.Lock would block forever",
				impl.Name, waited.Round(time.Millisecond), innerErr)
		})
	}
}
