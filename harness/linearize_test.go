package harness

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
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

// checkTimeout bounds each history's check.
const checkTimeout = time.Minute

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

// historiesOut hands a linearizability check's summaries, named for
// impl, to report; the tests that use it run only when make bench asks
// for the summaries (CONTEND_HISTORIES_OUT): Test*Conformance runs the
// same checks in make test.
func historiesOut(t *testing.T, impl string) contendtest.Option {
	if os.Getenv("CONTEND_HISTORIES_OUT") == "" {
		t.Skip("Test*Conformance runs the linearizability checks; make bench (CONTEND_HISTORIES_OUT) runs them here for the report")
	}
	return contendtest.OnHistories(func(sum linearize.Summary) {
		sum.Impl = impl
		report(t, sum)
	})
}

// TestLinearizableCounters, TestLinearizableLocks and
// TestLinearizableSemaphores run the linearizability check alone on every
// exact counter, lock and semaphore, and write its summaries for the
// report.
func TestLinearizableCounters(t *testing.T) {
	for _, impl := range Counters() {
		if impl.Guarantee == Exact {
			t.Run(impl.Name, func(t *testing.T) {
				runListed(t, contendtest.CounterChecks(), "linearizable", impl.New, append(counterOptions(impl), historiesOut(t, impl.Name))...)
			})
		}
	}
}

func TestLinearizableLocks(t *testing.T) {
	for _, impl := range Locks() {
		if impl.Guarantee == Exact {
			t.Run(impl.Name, func(t *testing.T) {
				runListed(t, contendtest.LockChecks(), "linearizable", impl.New, append(lockOptions(impl), historiesOut(t, impl.Name))...)
			})
		}
	}
}

func TestLinearizableSemaphores(t *testing.T) {
	for _, impl := range Semaphores() {
		if impl.Guarantee == Exact {
			t.Run(impl.Name, func(t *testing.T) {
				runListed(t, contendtest.SemaphoreChecks(), "linearizable", contendtest.NewSemaphoreFunc(impl.New),
					append(semaphoreOptions(impl), historiesOut(t, impl.Name))...)
			})
		}
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
			return contendtest.RecordCounter(counter.New(), 2, controlAdds, 0)
		}},
		{"lock", lock.Name, linearize.Lock, func() []porcupine.Operation {
			h, err := contendtest.RecordLock(lock.New(), controlClients, controlRounds)
			require.NoError(t, err)
			return h
		}},
		{"semaphore", sem.Name, semModel, func() []porcupine.Operation {
			s, err := sem.New(semCapacity)
			require.NoError(t, err)
			h, err := contendtest.RecordSemaphore(s, controlClients*2, controlRounds, func(int) int64 { return 1 })
			require.NoError(t, err)
			return h
		}},
	}
	contendtest.WithGOMAXPROCS(2, func() {
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
		contendtest.WithGOMAXPROCS(2, func() { c = impl.New() })
		h, err := contendtest.RecordSplitAdds(c, splitRounds, splitNap, pinThread)
		require.NoError(t, err)
		return h
	}
	contendtest.WithGOMAXPROCS(4, func() {
		start := time.Now()
		sum, _ := untilIllegal(t, linearize.Summary{Family: "counter", Impl: impl.Name, Scenario: "Load during Adds on two CPUs"},
			linearize.Counter, pershardPatience, pershardCheckTimeout, record)
		report(t, sum)
		assert.Equal(t, porcupine.Illegal, sum.Verdict, "no Load in %d histories (%d operations, %v) returned a sum the counter never held",
			sum.Histories, sum.Ops, time.Since(start).Round(time.Millisecond))
		t.Logf("first Illegal history after %d histories, %v", sum.Histories, time.Since(start).Round(time.Millisecond))
	})
}
