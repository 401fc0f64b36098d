package mutex

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/contend-lab/contend"
)

// mutexStarving is sync.Mutex's starvation-mode bit (internal/sync). With
// it set and the locked bit clear, the mutex is free but handed to its next
// waiter, and TryLock fails.
const mutexStarving = 4

// mutexState returns mu's state word (the first field of the
// internal/sync.Mutex inside sync.Mutex), so that a test can put the mutex
// in a state in which TryLock fails while nobody holds it. It skips the
// test if the word does not behave as that layout says.
func mutexState(t *testing.T, mu *sync.Mutex) *int32 {
	p := (*int32)(unsafe.Pointer(mu))
	mu.Lock()
	locked := atomic.LoadInt32(p)
	mu.Unlock()
	if free := atomic.LoadInt32(p); locked != 1 || free != 0 {
		t.Skipf("sync.Mutex's state word is not where this test expects it (locked %d, free %d)", locked, free)
	}
	return p
}

// TestTryLockFailureIsNotHeld puts each lock's sync.Mutex in starvation
// mode's hand-off (free, but TryLock fails) with no lease live, and checks
// that neither TryAcquire nor a cancellable Acquire takes that failure for
// "held": TryAcquire must not return ErrHeld, and a parked Acquire must not
// miss the moment the mutex is free (nobody would wake it).
func TestTryLockFailureIsNotHeld(t *testing.T) {
	const stuck = 30 * time.Millisecond // how long the mutex stays in hand-off
	const patience = 2 * time.Second    // far below the Acquire's own timeout
	locks := []struct {
		name string
		new  func() (contend.Lock, *sync.Mutex)
	}{
		{"mutex", func() (contend.Lock, *sync.Mutex) { l := NewLock(); return l, &l.mu }},
		{"reentrant", func() (contend.Lock, *sync.Mutex) { l := NewReentrantLock(); return l, &l.m.mu }},
	}
	ops := []struct {
		name    string
		acquire func(contend.Lock) (contend.Lease, error)
	}{
		{"try-acquire", func(l contend.Lock) (contend.Lease, error) { return l.TryAcquire(context.Background()) }},
		{"acquire", func(l contend.Lock) (contend.Lease, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*patience)
			defer cancel()
			return l.Acquire(ctx)
		}},
	}
	for _, lk := range locks {
		for _, op := range ops {
			t.Run(lk.name+"/"+op.name, func(t *testing.T) {
				l, mu := lk.new()
				state := mutexState(t, mu)
				atomic.StoreInt32(state, mutexStarving)
				type result struct {
					lease contend.Lease
					err   error
				}
				got := make(chan result, 1)
				go func() {
					lease, err := op.acquire(l)
					if lease != nil {
						err = lease.Release(context.Background()) // by its own goroutine, for the reentrant lease
					}
					got <- result{lease, err}
				}()
				select {
				case r := <-got:
					assert.Fail(t, "returned while the mutex was in hand-off with no lease live", "lease %v, err %v", r.lease, r.err)
					atomic.StoreInt32(state, 0)
					return
				case <-time.After(stuck):
				}
				atomic.StoreInt32(state, 0) // the hand-off is over: the mutex is free
				select {
				case r := <-got:
					assert.NoError(t, r.err, "once the mutex is free")
					assert.NotNil(t, r.lease, "once the mutex is free")
				case <-time.After(patience):
					assert.Fail(t, "did not take the mutex once it was free", "after %v: a lost wake-up", patience)
				}
			})
		}
	}
}
