package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	atomicsem "github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/impls/mutex"
	"github.com/contend-lab/contend/linearize"
)

// Issue 13's checks: histories recorded by RecordCounter, RecordLock and
// RecordSemaphore, checked with package linearize's models.
//
// CONTEND_HISTORIES_DIR names the directory an Illegal history's drawing
// goes to (default: the test's temporary directory, removed afterwards);
// CONTEND_HISTORIES_OUT names a file each checked implementation and
// scenario is appended to as a JSON line (linearize.Summary), for the
// report; CONTEND_VIOLATION_OUT names the file the naive lock's double
// holder is drawn to.

// Sizes of the recorded histories: several short ones per GOMAXPROCS, so
// that each checks in well under a second even when it is Illegal.
const (
	historiesPerRun  = 4
	historyClients   = 8 // counters: the checker's search is exponential in overlapping Adds
	counterOps       = 40
	counterLoadEvery = 4
	lockClients      = 16
	lockRounds       = 8
	// spinFIFOClients is lockClients for a lock that SpinsFIFO: with more
	// spinning clients than cores every hand-off waits for a time slice,
	// and the history would take seconds to record, not to check.
	spinFIFOClients = 4
	checkTimeout    = time.Minute
)

// historyDir returns where Illegal histories are drawn.
func historyDir(t *testing.T) string {
	if dir := os.Getenv("CONTEND_HISTORIES_DIR"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

// checkHistory checks one history, counts it into sum, and logs the path
// of its drawing if it is Illegal.
func checkHistory(t *testing.T, sum *linearize.Summary, model porcupine.Model, history []porcupine.Operation) linearize.Verdict {
	t.Helper()
	return checkHistoryWithin(t, sum, model, history, checkTimeout)
}

// checkHistoryWithin is checkHistory with the check bounded by timeout.
func checkHistoryWithin(t *testing.T, sum *linearize.Summary, model porcupine.Model, history []porcupine.Operation, timeout time.Duration) linearize.Verdict {
	t.Helper()
	v, err := linearize.Check(model, history, timeout, historyDir(t), sum.Family+"-"+sum.Impl)
	require.NoError(t, err)
	sum.Add(v)
	if v.Visualization != "" {
		t.Logf("%s %s, %s: history of %d operations is not linearizable; drawn in %s", sum.Family, sum.Impl, sum.Scenario, v.Ops, v.Visualization)
	}
	return v
}

// report appends sum to $CONTEND_HISTORIES_OUT, if it is set.
func report(t *testing.T, sum linearize.Summary) {
	t.Helper()
	t.Logf("%s %s, %s: %s (%d histories, %d operations)", sum.Family, sum.Impl, sum.Scenario, sum.Verdict, sum.Histories, sum.Ops)
	if path := os.Getenv("CONTEND_HISTORIES_OUT"); path != "" {
		if os.Getenv("CONTEND_HISTORIES_DIR") == "" {
			sum.Visualization = "" // drawn in a temporary directory, gone after the test
		}
		require.NoError(t, linearize.AppendJSONLines(path, sum))
	}
}

func scenario(procs int) string { return fmt.Sprintf("stress, GOMAXPROCS %d", procs) }

// knownBugs are the implementations whose histories are known to be
// Illegal now, with why and where it is being fixed: an Illegal verdict
// for one of them skips the case instead of failing it. Remove an entry
// once its fix is merged.
var knownBugs = map[string]string{}

// assertLinearizable asserts that every history of sum was Ok, or skips
// the case with the known bug's note.
func assertLinearizable(t *testing.T, sum linearize.Summary) {
	t.Helper()
	if note, known := knownBugs[sum.Family+" "+sum.Impl]; known && sum.Verdict == porcupine.Illegal {
		t.Skipf("%s (%s: %d of %d histories Illegal; drawn in %s)", note, sum.Scenario, sum.Illegal, sum.Histories, sum.Visualization)
	}
	assert.Equal(t, porcupine.Ok, sum.Verdict, "%s %s, %s: %d of %d histories not linearizable (first drawn in %s)",
		sum.Family, sum.Impl, sum.Scenario, sum.Illegal, sum.Histories, sum.Visualization)
}

// checkAtEveryProcs records historiesPerRun histories with record at each
// StressGOMAXPROCS, checks them against model, reports each GOMAXPROCS's
// summary and asserts it linearizable.
func checkAtEveryProcs(t *testing.T, family, name string, model porcupine.Model, record func() []porcupine.Operation) {
	t.Helper()
	for _, procs := range StressGOMAXPROCS {
		sum := linearize.Summary{Family: family, Impl: name, Scenario: scenario(procs)}
		WithGOMAXPROCS(procs, func() {
			for range historiesPerRun * StressScale() {
				checkHistory(t, &sum, model, record())
			}
		})
		report(t, sum)
		assertLinearizable(t, sum)
	}
}

// TestLinearizableCounters: every exact counter's histories are
// linearizable, at every StressGOMAXPROCS.
func TestLinearizableCounters(t *testing.T) {
	for _, impl := range Counters() {
		if impl.Guarantee != Exact {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			checkAtEveryProcs(t, "counter", impl.Name, linearize.Counter, func() []porcupine.Operation {
				return RecordCounter(impl.New(), historyClients, counterOps, counterLoadEvery)
			})
		})
	}
}

// TestLinearizableLocks: every exact lock's histories of Acquire,
// TryAcquire and Release by lockClients clients are linearizable, at every
// StressGOMAXPROCS.
func TestLinearizableLocks(t *testing.T) {
	for _, impl := range Locks() {
		if impl.Guarantee != Exact {
			continue
		}
		clients := lockClients
		if impl.SpinsFIFO {
			clients = spinFIFOClients
		}
		t.Run(impl.Name, func(t *testing.T) {
			// A lock with the hand-off deviation keeps only the weaker
			// TryAcquire: the model says so.
			checkAtEveryProcs(t, "lock", impl.Name, lockModel(false, impl.Deviation != ""), func() []porcupine.Operation {
				h, err := RecordLock(impl.New(), clients, lockRounds)
				require.NoError(t, err)
				return h
			})
		})
	}
}

// TestLinearizableSemaphores: every exact semaphore of semCapacity
// permits, with lockClients clients asking for 1, 2 or 3, is linearizable
// at every StressGOMAXPROCS (one without fencing tokens, with its tokens
// read as names only).
func TestLinearizableSemaphores(t *testing.T) {
	for _, impl := range Semaphores() {
		if impl.Guarantee != Exact {
			continue
		}
		model, err := semaphoreModel(impl, semCapacity)
		require.NoError(t, err)
		t.Run(impl.Name, func(t *testing.T) {
			checkAtEveryProcs(t, "semaphore", impl.Name, model, func() []porcupine.Operation {
				s, err := impl.New(semCapacity)
				require.NoError(t, err)
				h, err := RecordSemaphore(s, lockClients, lockRounds, stressPermits)
				require.NoError(t, err)
				return h
			})
		})
	}
}

// semaphoreModel returns the model impl is checked against: with fencing
// tokens, unless it declares it has none.
func semaphoreModel(impl SemaphoreImpl, capacity int64) (porcupine.Model, error) {
	if impl.NoFencing {
		return linearize.NewUnfencedSemaphore(capacity)
	}
	return linearize.NewSemaphore(capacity)
}

// recordServedBeforeTry records, on one P so that nothing runs unless the
// test goroutine blocks, the history that tells whether a semaphore of 2
// permits draws a lease's token with its permits (issue 13's token order):
// client 0 holds both permits; client 1 parks in Acquire(1); client 0's
// Release serves client 1 one permit, which then holds it though its
// goroutine has not run yet; TryAcquire(2) finds one permit free (held);
// TryAcquire(1) takes the last one, or is held because client 1 is served
// first; then client 1 runs and returns its lease. The held TryAcquire(2)
// places client 1's grant before it, and so before the TryAcquire(1): a
// semaphore that draws tokens after taking the permits gives the
// TryAcquire(1) the smaller token. It returns the history and the two
// leases' tokens (0 for a TryAcquire(1) that was held).
func recordServedBeforeTry(t *testing.T, s contend.Semaphore) (h []porcupine.Operation, served, try uint64) {
	t.Helper()
	require.Equal(t, int64(2), s.Capacity())
	rec := linearize.NewRecorder(3)
	WithGOMAXPROCS(1, func() {
		o := rec.Call(0, linearize.LockInput{Op: linearize.Acquire, N: 2})
		holder, err := s.Acquire(bg, 2)
		require.NoError(t, err)
		o.Return(linearize.LockOutput{Token: holder.Token()})
		ctx, cancel := context.WithTimeout(bg, patience)
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
		require.NoError(t, holder.Release(bg))
		o.Return(linearize.LockOutput{})
		o = rec.Call(0, linearize.LockInput{Op: linearize.TryAcquire, N: 2})
		_, err = s.TryAcquire(bg, 2)
		require.ErrorIs(t, err, contend.ErrHeld, "TryAcquire(2) with one permit free")
		o.Return(linearize.LockOutput{Outcome: linearize.Held})
		o = rec.Call(2, linearize.LockInput{Op: linearize.TryAcquire, N: 1})
		l, err := s.TryAcquire(bg, 1)
		if errors.Is(err, contend.ErrHeld) {
			o.Return(linearize.LockOutput{Outcome: linearize.Held})
		} else {
			require.NoError(t, err)
			try = l.Token()
			o.Return(linearize.LockOutput{Token: try})
		}
		w, ok := <-waiter
		require.True(t, ok, "the waiter's Acquire(1) failed")
		served = w.Token()
	})
	return rec.History(), served, try
}

// TestSemaphoreTokensFollowGrants is the regression test of issue 13's
// token order, one deterministic interleaving per semaphore: a lease whose
// permits were taken first has the smaller token, and the history is
// linearizable under the model with tokens. A semaphore that declares no
// fencing token is asserted to still deviate, so that the declaration is
// dropped once it is fixed.
func TestSemaphoreTokensFollowGrants(t *testing.T) {
	fenced, err := linearize.NewSemaphore(2)
	require.NoError(t, err)
	for _, impl := range Semaphores() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			s, err := impl.New(2)
			require.NoError(t, err)
			h, served, try := recordServedBeforeTry(t, s)
			v := checkHistory(t, &linearize.Summary{Family: "semaphore", Impl: impl.Name, Scenario: "served, then TryAcquire"}, fenced, h)
			if impl.NoFencing {
				require.NotZero(t, try, "the TryAcquire(1) after the waiter was served")
				assert.Less(t, try, served, "declared NoFencing, but the later TryAcquire's token is no longer the smaller: drop NoFencing")
				assert.Equal(t, porcupine.Illegal, v.Result, "declared NoFencing, but the history is linearizable with tokens")
				return
			}
			if try != 0 {
				assert.Greater(t, try, served, "the waiter's permits were taken first (inside the Release), so its token must be the smaller")
			}
			assert.Equal(t, porcupine.Ok, v.Result)
		})
	}
}

// Sizes of the controls' histories: the check of an Illegal history
// explores every order the history allows before it gives up, so the
// controls' histories have few clients.
const (
	controlClients = 4
	controlRounds  = 50
	controlAdds    = 2000
)

// controlPatience bounds how long each control retries.
const controlPatience = 20 * time.Second

// untilIllegal records and checks histories with record until one is
// Illegal or patience has passed, each check bounded by timeout, and returns the summary and the
// last history.
func untilIllegal(t *testing.T, sum linearize.Summary, model porcupine.Model, patience, timeout time.Duration, record func() []porcupine.Operation) (linearize.Summary, []porcupine.Operation) {
	t.Helper()
	var h []porcupine.Operation
	for deadline := time.Now().Add(patience); sum.Verdict != porcupine.Illegal && time.Now().Before(deadline); {
		h = record()
		checkHistoryWithin(t, &sum, model, h, timeout)
	}
	return sum, h
}

// TestLinearizabilityControls shows the racy controls' histories are not
// linearizable: the naive counter loses an update, the naive lock has two
// holders, the naive semaphore admits more than its capacity. Under -race
// it re-runs itself in a subprocess built without it, as TestRacyControl
// does. CONTEND_VIOLATION_OUT, if set, receives the drawing of the naive
// lock's violation.
func TestLinearizabilityControls(t *testing.T) {
	if rerunWithoutRace(t, "counter naive, control, GOMAXPROCS 2: Illegal", "lock naive, control, GOMAXPROCS 2: Illegal",
		"semaphore naive, control, GOMAXPROCS 2: Illegal") {
		return
	}
	counter, _ := CounterByName("naive")
	lock, _ := LockByName("naive")
	sem, _ := SemaphoreByName("naive")
	semModel, err := linearize.NewSemaphore(semCapacity)
	require.NoError(t, err)
	require.GreaterOrEqual(t, runtime.NumCPU(), 2, "the racy controls need two CPUs")
	tests := []struct {
		family, name string
		model        porcupine.Model
		record       func() []porcupine.Operation
	}{
		{"counter", counter.Name, linearize.Counter, func() []porcupine.Operation {
			return RecordCounter(counter.New(), 2, controlAdds, 0)
		}},
		{"lock", lock.Name, linearize.Lock, func() []porcupine.Operation {
			h, err := RecordLock(lock.New(), controlClients, controlRounds)
			require.NoError(t, err)
			return h
		}},
		{"semaphore", sem.Name, semModel, func() []porcupine.Operation {
			s, err := sem.New(semCapacity)
			require.NoError(t, err)
			h, err := RecordSemaphore(s, controlClients*2, controlRounds, func(int) int64 { return 1 })
			require.NoError(t, err)
			return h
		}},
	}
	WithGOMAXPROCS(2, func() {
		for _, tc := range tests {
			sum, h := untilIllegal(t, linearize.Summary{Family: tc.family, Impl: tc.name, Scenario: "control, GOMAXPROCS 2"}, tc.model, controlPatience, checkTimeout, tc.record)
			report(t, sum)
			assert.Equal(t, porcupine.Illegal, sum.Verdict, "%s %s: every one of %d histories linearizable", tc.family, tc.name, sum.Histories)
			if path := os.Getenv("CONTEND_VIOLATION_OUT"); path != "" && tc.family == "lock" && sum.Verdict == porcupine.Illegal {
				res, err := linearize.Visualize(tc.model, h, path)
				require.NoError(t, err)
				require.Equal(t, porcupine.Illegal, res)
				t.Logf("the naive lock's violation is drawn in %s", path)
			}
		}
	})
}

// Sizes of TestPershardLoadNotLinearizable's histories: rounds of two
// Adds each, the first after a nap of splitNap.
const (
	splitRounds = 24
	splitNap    = 20 * time.Microsecond
)

// pershardPatience bounds how long TestPershardLoadNotLinearizable retries.
const pershardPatience = time.Minute

// pershardCheckTimeout bounds each check of a RecordSplitAdds history (a
// few dozen operations: it takes microseconds).
const pershardCheckTimeout = 5 * time.Second

// TestPershardLoadNotLinearizable shows, with the checker's verdict, what
// pershard's "approximate" Load means: a Load during Adds can return a sum
// the counter never held. RecordSplitAdds makes it likely (a writer's
// wake-up takes the loader's CPU between its reads of two stripes, and the
// writers' Adds land in between); the test retries for pershardPatience
// and fails if no history shows it, since the construction then no longer
// works. Where it cannot work (no Linux thread binding, one CPU) it says
// why and skips. The stripes are made at GOMAXPROCS 2 (two); the run is at
// GOMAXPROCS 4, which RecordSplitAdds needs.
func TestPershardLoadNotLinearizable(t *testing.T) {
	impl, ok := CounterByName("pershard")
	require.True(t, ok)
	require.Equal(t, Approximate, impl.Guarantee)
	if reason := splitAddsUnsupported(); reason != "" {
		t.Skip(reason)
	}
	record := func() []porcupine.Operation {
		var c contend.Counter
		WithGOMAXPROCS(2, func() { c = impl.New() })
		h, err := RecordSplitAdds(c, splitRounds, splitNap, pinThread)
		require.NoError(t, err)
		return h
	}
	WithGOMAXPROCS(4, func() {
		start := time.Now()
		sum, _ := untilIllegal(t, linearize.Summary{Family: "counter", Impl: impl.Name, Scenario: "Load during Adds on two CPUs"},
			linearize.Counter, pershardPatience, pershardCheckTimeout, record)
		report(t, sum)
		assert.Equal(t, porcupine.Illegal, sum.Verdict, "no Load in %d histories (%d operations, %v) returned a sum the counter never held",
			sum.Histories, sum.Ops, time.Since(start).Round(time.Millisecond))
		t.Logf("first Illegal history after %d histories, %v", sum.Histories, time.Since(start).Round(time.Millisecond))
	})
}

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
// take a lease of a mutex lock, release it, and only then write with its
// token, as a holder paused past its lease would: writes arrive out of
// token order, and a correct register rejects the stale ones. Every
// fourth round reads instead.
func recordFencedWrites(r *fencedRegister, clients, rounds int) []porcupine.Operation {
	l := mutex.NewLock()
	rec := linearize.NewRecorder(clients)
	together(clients, func(g int) {
		for i := range rounds {
			if i%4 == 3 {
				o := rec.Call(g, linearize.RegisterInput{Read: true})
				o.Return(linearize.RegisterOutput{Value: r.Read()})
				continue
			}
			lease, err := l.Acquire(context.Background())
			if err != nil {
				panic(err) // a mutex lock's Acquire on a background context does not fail
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
	return rec.History()
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
			h, err := RecordLock(l, clients, controlRounds)
			require.NoError(t, err)
			return h
		}
	}
	overAdmits := func(fault bool) func() []porcupine.Operation {
		return func() []porcupine.Operation {
			capacity := int64(semCapacity)
			if fault {
				capacity++
			}
			s, err := atomicsem.NewSemaphore(capacity)
			require.NoError(t, err)
			var sem contend.Semaphore = s
			if fault {
				sem = overAdmitting{s} // reports semCapacity, admits one more
			}
			h, err := RecordSemaphore(sem, 2*semCapacity, controlRounds, func(int) int64 { return 1 })
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
				return RecordCounter(new(lostUpdateCounter), historyClients, counterOps, counterLoadEvery)
			},
			func() []porcupine.Operation {
				return RecordCounter(atomicCounter(), historyClients, counterOps, counterLoadEvery)
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
	WithGOMAXPROCS(2, func() {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				sum, _ := untilIllegal(t, linearize.Summary{Family: "fault", Impl: tc.name}, tc.model, controlPatience, checkTimeout, tc.faulty)
				assert.Equal(t, porcupine.Illegal, sum.Verdict, "%d histories of the faulty implementation, all linearizable", sum.Histories)
				clean := linearize.Summary{Family: "fault", Impl: tc.name + " (without the fault)"}
				checkHistory(t, &clean, tc.model, tc.clean())
				assert.Equal(t, porcupine.Ok, clean.Verdict)
			})
		}
	})
}

func atomicCounter() contend.Counter {
	impl, _ := CounterByName("atomic")
	return impl.New()
}
