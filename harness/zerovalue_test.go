package harness

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/keyed"
)

// zeroOf returns a pointer to a new zero value of the type v points to:
// what a user gets by writing &T{} instead of calling T's constructor.
func zeroOf[I any](v I) I {
	return reflect.New(reflect.TypeOf(v).Elem()).Interface().(I)
}

// zeroLocksRefuse names the registered locks whose zero value cannot work
// and says so: every call returns contend.ErrNotConstructed. Every other
// lock's zero value must be an unlocked lock, held to the conformance
// checks.
var zeroLocksRefuse = map[string]bool{"channel": true}

// guarded runs f on another goroutine and returns what went wrong: a
// panic, or not returning within patience.
func guarded(f func()) (problem string) {
	ok := elsewhere(patience, func() {
		defer func() {
			if p := recover(); p != nil {
				problem = fmt.Sprintf("panicked: %v", p)
			}
		}()
		f()
	})
	if !ok {
		return fmt.Sprintf("did not return within %v", patience)
	}
	return problem
}

// TestZeroValues walks the zero value of every registered in-process lock,
// semaphore and keyed limiter type (found by reflection from the registry,
// so a new entry is walked too) and asserts that it either works, or
// refuses every call with a clear error, at once: no panic, no hang.
//   - Locks work like a constructed one (every contendtest check; a
//     single goroutine's use for the racy control), or, as declared in
//     zeroLocksRefuse, return contend.ErrNotConstructed.
//   - Semaphores have no permits: every request is a *contend.PermitError
//     with Capacity 0.
//   - Keyed limiters deny every request (x/time/rate's convention for its
//     zero Limiter) and hold no keys.
func TestZeroValues(t *testing.T) {
	for _, impl := range Locks() {
		t.Run("lock/"+impl.Name, func(t *testing.T) {
			newZero := func() contend.Lock { return zeroOf(impl.New()) }
			if zeroLocksRefuse[impl.Name] {
				l := newZero()
				var tryErr, acqErr error
				var waited time.Duration
				require.Empty(t, guarded(func() {
					_, tryErr = l.TryAcquire(bg)
					ctx, cancel := context.WithTimeout(bg, patience)
					defer cancel()
					start := time.Now()
					_, acqErr = l.Acquire(ctx)
					waited = time.Since(start)
				}))
				assert.ErrorIs(t, tryErr, contend.ErrNotConstructed, "TryAcquire")
				assert.ErrorIs(t, acqErr, contend.ErrNotConstructed, "Acquire")
				assert.Less(t, waited, shortTimeout, "Acquire must refuse at once, not wait for its ctx")
				return
			}
			var smokeErr error
			require.Empty(t, guarded(func() { smokeErr = smokeLock(newZero()) }))
			require.NoError(t, smokeErr, "a single goroutine's use of the zero value")
			if !impl.Guarantee.Correct() {
				return
			}
			contendtest.Lock(t, newZero, lockOptions(impl)...)
		})
	}
	for _, impl := range Semaphores() {
		t.Run("semaphore/"+impl.Name, func(t *testing.T) {
			s0, err := impl.New(1)
			require.NoError(t, err)
			s := zeroOf(s0)
			var capacity int64
			var errs [2]error
			require.Empty(t, guarded(func() {
				capacity = s.Capacity()
				_, errs[0] = s.TryAcquire(bg, 1)
				ctx, cancel := context.WithTimeout(bg, patience)
				defer cancel()
				_, errs[1] = s.Acquire(ctx, 1)
			}))
			assert.Zero(t, capacity)
			for i, op := range []string{"TryAcquire", "Acquire"} {
				var pe *contend.PermitError
				if assert.ErrorAs(t, errs[i], &pe, op) {
					assert.Equal(t, contend.PermitError{N: 1, Capacity: 0}, *pe, op)
				}
			}
		})
	}
	for _, impl := range keyed.Impls() {
		t.Run("keyed/"+impl.Name, func(t *testing.T) {
			l0, err := impl.New(contend.BucketConfig{Capacity: 1, Rate: 1})
			require.NoError(t, err)
			l := zeroOf(l0)
			allowed := true
			n := -1
			require.Empty(t, guarded(func() {
				allowed = l.Allow(1)
				if ln, ok := l.(interface{ Len() int }); ok {
					n = ln.Len()
				}
			}))
			assert.False(t, allowed, "the zero limiter denies every request")
			assert.Zero(t, n, "and keeps no key")
		})
	}
}

// smokeLock is one goroutine's plain use of l: TryAcquire, Release,
// Acquire, Release, each succeeding, and a TryAcquire while held failing.
func smokeLock(l contend.Lock) error {
	lease, err := l.TryAcquire(bg)
	if err != nil {
		return fmt.Errorf("TryAcquire on the free lock: %w", err)
	}
	if err := lease.Release(bg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(bg, patience)
	defer cancel()
	if lease, err = l.Acquire(ctx); err != nil {
		return fmt.Errorf("Acquire on the free lock: %w", err)
	}
	if err := probe(l); !errors.Is(err, contend.ErrHeld) {
		return fmt.Errorf("TryAcquire from another goroutine while held: got %v, want ErrHeld", err)
	}
	return lease.Release(bg)
}
