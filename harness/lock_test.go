package harness

import (
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/contendtest"
)

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

// semCapacity is the capacity of the semaphores the harness's own tests
// make (contendtest's checks make theirs of the same).
const semCapacity = 4

// stressPermits asks for 1, 2 or 3 permits of 4, by goroutine, as
// contendtest's semaphore checks do.
func stressPermits(g int) int64 { return int64(1 + g%3) }

// TestStressLocks and TestStressSemaphores run the stress check alone on
// every correct lock and semaphore, for make stress (CONTEND_STRESS=long);
// TestLockConformance and TestSemaphoreConformance run it otherwise.
func TestStressLocks(t *testing.T) {
	skipUnlessLong(t)
	for _, impl := range Locks() {
		if impl.Guarantee.Correct() {
			t.Run(impl.Name, func(t *testing.T) { runListed(t, contendtest.LockChecks(), "stress", impl.New, lockOptions(impl)...) })
		}
	}
}

func TestStressSemaphores(t *testing.T) {
	skipUnlessLong(t)
	for _, impl := range Semaphores() {
		if impl.Guarantee.Correct() {
			t.Run(impl.Name, func(t *testing.T) {
				runListed(t, contendtest.SemaphoreChecks(), "stress", impl.New, semaphoreOptions(impl)...)
			})
		}
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
	contendtest.WithGOMAXPROCS(2, func() {
		var run contendtest.LockRun
		runs := 0
		for deadline := time.Now().Add(racyLockPatience); run.Overlaps == 0 && time.Now().Before(deadline); runs++ {
			var err error
			run, err = contendtest.RunLock(lock.New(), contendtest.StressGoroutines, 50*time.Millisecond, contendtest.WorkRounds)
			require.NoError(t, err)
		}
		if assert.Positive(t, run.Overlaps, "the naive lock never overlapped in %d runs", runs) {
			t.Logf("naive lock overlapped %d times in %d acquisitions (%d token regressions), in run %d",
				run.Overlaps, run.Acquisitions, run.TokenRegressions, runs)
		}

		var srun contendtest.SemaphoreRun
		runs = 0
		for deadline := time.Now().Add(racyLockPatience); srun.Overflows == 0 && time.Now().Before(deadline); runs++ {
			s, err := sem.New(semCapacity)
			require.NoError(t, err)
			srun, err = contendtest.RunSemaphore(s, contendtest.StressGoroutines, 50*time.Millisecond, func(int) int64 { return 1 })
			require.NoError(t, err)
		}
		if assert.Positive(t, srun.Overflows, "the naive semaphore never overflowed in %d runs", runs) {
			t.Logf("naive semaphore overflowed %d times in %d acquisitions, at most %d permits held of %d, in run %d",
				srun.Overflows, srun.Acquisitions, srun.MaxHeld, srun.Capacity, runs)
		}
	})
}
