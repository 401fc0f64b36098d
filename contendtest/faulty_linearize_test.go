package contendtest_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/linearize"
)

// spuriousTry is a correct lock whose TryAcquire also fails, with
// ErrHeld, on every third call whatever the lock's state: the bug issue 13
// found in the mutex and reentrant locks (sync.Mutex.TryLock can fail on
// an unlocked mutex).
type spuriousTry struct {
	contend.Lock
	calls atomic.Int64
}

func (l *spuriousTry) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if l.calls.Add(1)%3 == 0 {
		return nil, contend.ErrHeld
	}
	return l.Lock.TryAcquire(ctx)
}

// fencedRegister is the resource a fencing lock protects: it accepts a
// write only with a token at least the largest it has accepted, unless
// acceptsOld is set.
type fencedRegister struct {
	mu         sync.Mutex
	seen       uint64
	value      int64
	acceptsOld bool
}

func (r *fencedRegister) Write(token uint64, v int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.seen && !r.acceptsOld {
		return false
	}
	r.seen, r.value = max(r.seen, token), v
	return true
}

func (r *fencedRegister) Read() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.value
}

// recordFencedWrites records the register's history when clients each
// take a lease of a lock, release it, and only then write with its
// token, as a holder paused past its lease would: writes arrive out of
// token order, and a correct register rejects the stale ones. Every
// fourth round reads instead.
func recordFencedWrites(r *fencedRegister, clients, rounds int) []porcupine.Operation {
	l := newFaultyLock("")
	rec := linearize.NewRecorder(clients)
	var wg sync.WaitGroup
	for g := range clients {
		wg.Go(func() {
			for i := range rounds {
				if i%4 == 3 {
					o := rec.Call(g, linearize.RegisterInput{Read: true})
					o.Return(linearize.RegisterOutput{Value: r.Read()})
					continue
				}
				lease, err := l.Acquire(context.Background())
				if err != nil {
					panic(err) // a channel lock's Acquire on a background context does not fail
				}
				tok := lease.Token()
				_ = lease.Release(context.Background())
				runtime.Gosched()
				v := int64(g*rounds + i)
				o := rec.Call(g, linearize.RegisterInput{Token: tok, Value: v})
				out := linearize.RegisterOutput{}
				if !r.Write(tok, v) {
					out.Outcome = linearize.Rejected
				}
				o.Return(out)
			}
		})
	}
	wg.Wait()
	return rec.History()
}

// Sizes of the faulty implementations' histories: the check of an
// Illegal history explores every order the history allows before it gives
// up, so they have few clients.
const (
	controlClients  = 4
	controlRounds   = 50
	controlPatience = 20 * time.Second
	historyClients  = 8
	counterOps      = 40
)

// untilIllegal records and checks histories with record until one is
// Illegal or controlPatience has passed, and returns the summary.
func untilIllegal(t *testing.T, model porcupine.Model, record func() []porcupine.Operation) linearize.Summary {
	t.Helper()
	var sum linearize.Summary
	for deadline := time.Now().Add(controlPatience); sum.Verdict != porcupine.Illegal && time.Now().Before(deadline); {
		v, err := linearize.Check(model, record(), time.Minute, t.TempDir(), "fault")
		require.NoError(t, err)
		sum.Add(v)
	}
	return sum
}

// TestLinearizabilityCatchesFaults records histories of implementations
// with the fault each model exists to catch and asserts that a history is
// Illegal within a bounded number of tries; and the same runs on the
// implementations without the fault are Ok, so that what is caught is the
// fault.
func TestLinearizabilityCatchesFaults(t *testing.T) {
	semModel, err := linearize.NewSemaphore(semCapacity)
	require.NoError(t, err)
	lockHistory := func(l contend.Lock, clients int) func() []porcupine.Operation {
		return func() []porcupine.Operation {
			h, err := contendtest.RecordLock(l, clients, controlRounds)
			require.NoError(t, err)
			return h
		}
	}
	overAdmits := func(fault bool) func() []porcupine.Operation {
		return func() []porcupine.Operation {
			s, err := newMutexSemaphore(semCapacity)
			if fault {
				s, err = newOverAdmitting(semCapacity) // reports semCapacity, admits one more
			}
			require.NoError(t, err)
			h, err := contendtest.RecordSemaphore(s, 2*semCapacity, controlRounds, func(int) int64 { return 1 })
			require.NoError(t, err)
			return h
		}
	}
	tests := []struct {
		name          string
		model         porcupine.Model
		faulty, clean func() []porcupine.Operation
	}{
		{"counter/loses updates", linearize.Counter,
			func() []porcupine.Operation {
				return contendtest.RecordCounter(newLostUpdateCounter(), historyClients, counterOps, 4)
			},
			func() []porcupine.Operation {
				return contendtest.RecordCounter(newAtomicCounter(), historyClients, counterOps, 4)
			}},
		{"lock/repeated tokens", linearize.Lock,
			func() []porcupine.Operation { return lockHistory(newFaultyLock("repeated-tokens"), controlClients)() },
			func() []porcupine.Operation { return lockHistory(newFaultyLock(""), controlClients)() }},
		{"lock/no exclusion", linearize.Lock,
			func() []porcupine.Operation { return lockHistory(newFaultyLock("no-exclusion"), controlClients)() },
			func() []porcupine.Operation { return lockHistory(newFaultyLock(""), controlClients)() }},
		{"lock/try-acquire fails on a free lock", linearize.Lock,
			func() []porcupine.Operation { return lockHistory(&spuriousTry{Lock: newFaultyLock("")}, 2)() },
			func() []porcupine.Operation { return lockHistory(newFaultyLock(""), 2)() }},
		{"semaphore/over-admits", semModel, overAdmits(true), overAdmits(false)},
		{"register/accepts an old token", linearize.Register,
			func() []porcupine.Operation {
				return recordFencedWrites(&fencedRegister{acceptsOld: true}, controlClients, controlRounds)
			},
			func() []porcupine.Operation {
				return recordFencedWrites(&fencedRegister{}, controlClients, controlRounds)
			}},
	}
	contendtest.WithGOMAXPROCS(2, func() {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				sum := untilIllegal(t, tc.model, tc.faulty)
				assert.Equal(t, porcupine.Illegal, sum.Verdict, "%d histories of the faulty implementation, all linearizable", sum.Histories)
				v, err := linearize.Check(tc.model, tc.clean(), time.Minute, t.TempDir(), "clean")
				require.NoError(t, err)
				assert.Equal(t, porcupine.Ok, v.Result, "without the fault")
			})
		}
	})
}
