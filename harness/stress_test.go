package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/raceflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStressCounters and TestStressBuckets run the stress check alone on
// every correct counter and bucket, for make stress (CONTEND_STRESS=long);
// TestCounterConformance and TestBucketConformance run it otherwise.
func TestStressCounters(t *testing.T) {
	skipUnlessLong(t)
	for _, impl := range Counters() {
		if impl.Guarantee.Correct() {
			t.Run(impl.Name, func(t *testing.T) {
				runListed(t, contendtest.CounterChecks(), "stress", impl.New, counterOptions(impl)...)
			})
		}
	}
}

func TestStressBuckets(t *testing.T) {
	skipUnlessLong(t)
	for _, impl := range Buckets() {
		if impl.Guarantee.Correct() {
			t.Run(impl.Name, func(t *testing.T) {
				runListed(t, contendtest.BucketChecks(), "stress", contendtest.NewBucketFunc(impl.New), bucketOptions(impl)...)
			})
		}
	}
}

// racyControlPatience bounds how long TestRacyControl retries.
const racyControlPatience = 30 * time.Second

// TestRacyControl shows the naive control failing its invariants: it loses
// counter updates and over-grants tokens under concurrency. The racy code
// cannot run in a -race binary (the detector would fail the whole run, which
// TestRaceDetectorFlagsNaive shows on purpose), so under -race this test
// re-runs itself in a subprocess built without it.
func TestRacyControl(t *testing.T) {
	if rerunWithoutRace(t, "naive counter lost", "naive bucket over-granted") {
		return
	}
	counter, _ := CounterByName("naive")
	bucket, _ := BucketByName("naive")
	require.Equal(t, Racy, counter.Guarantee)
	require.Equal(t, Racy, bucket.Guarantee)

	contendtest.WithGOMAXPROCS(2, func() {
		// A lost update needs two goroutines between the load and the store
		// of the same Add at the same instant, on two CPUs: on one CPU the
		// scheduler never preempts the frameless Add in that window. When the
		// other core is busy (go test runs packages in parallel), that is
		// rare, so the control retries, running longer each time, until it
		// fails or racyControlPatience has passed; the suite's other
		// packages finish long before that and free the second core.
		require.GreaterOrEqual(t, runtime.NumCPU(), 2, "the racy control needs two CPUs to lose updates")
		deadline := time.Now().Add(racyControlPatience)
		var lost contendtest.CounterRun
		runs := 0
		for adds := 10_000; lost.Lost() == 0 && time.Now().Before(deadline); adds = min(2*adds, 1_280_000) {
			lost = contendtest.RunCounter(counter.New(), contendtest.StressGoroutines, adds)
			runs++
		}
		if assert.NotZero(t, lost.Lost(), "the naive counter never lost an update in %d runs of 100 goroutines over %v", runs, racyControlPatience) {
			t.Logf("naive counter lost %d of %d (%.1f%%), in run %d", lost.Lost(), lost.Want, 100*lost.LostFraction(), runs)
		}

		// A frozen clock: a correct bucket grants exactly Capacity.
		cfg := contend.BucketConfig{Capacity: 10_000, Rate: 1, Clock: contend.NewManualClock(0)}
		var over contendtest.BucketRun
		runs = 0
		for deadline = time.Now().Add(racyControlPatience); over.OverGrant() == 0 && time.Now().Before(deadline); runs++ {
			var err error
			over, err = contendtest.RunBucket(bucket.New, cfg, contendtest.StressGoroutines, 50*time.Millisecond)
			require.NoError(t, err)
		}
		if assert.Positive(t, over.OverGrant(), "the naive bucket never over-granted in %d runs over %v", runs, racyControlPatience) {
			t.Logf("naive bucket over-granted: %d tokens granted of %d allowed (ratio %.3f), in run %d", over.Granted, over.Allowed, over.GrantRatio(), runs)
		}
	})
}

// TestPerGoroutineOverGrants shows the "thread-local" anti-pattern granting
// far beyond the shared limit: each goroutine has its own full bucket.
func TestPerGoroutineOverGrants(t *testing.T) {
	impl, ok := BucketByName("per-goroutine")
	require.True(t, ok)
	require.Equal(t, Broken, impl.Guarantee)
	cfg := contend.BucketConfig{Capacity: 100, Rate: 1, Clock: contend.NewManualClock(0)}
	contendtest.WithGOMAXPROCS(2, func() {
		run, err := contendtest.RunBucket(impl.New, cfg, contendtest.StressGoroutines, 100*time.Millisecond)
		require.NoError(t, err)
		t.Logf("per-goroutine: %d tokens granted, %d allowed (ratio %.1f)", run.Granted, run.Allowed, run.GrantRatio())
		assert.Greater(t, run.GrantRatio(), 10.0, "100 goroutines with private buckets must grant over 10× the shared limit")
	})
}

// TestRaceDemo is the race detector demonstration behind `make race`. It
// is skipped unless CONTEND_RACE_DEMO=1, because under -race it fails.
func TestRaceDemo(t *testing.T) {
	if os.Getenv("CONTEND_RACE_DEMO") != "1" {
		t.Skip("set CONTEND_RACE_DEMO=1 (make race) to watch the race detector catch the naive control")
	}
	counter, _ := CounterByName("naive")
	bucket, _ := BucketByName("naive")
	c := counter.New()
	b, err := bucket.New(contend.BucketConfig{Capacity: 1000, Rate: 1000})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Add(1)
				b.TryTake(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("naive counter: %d of 8000 adds survived", c.Load())
}

// TestRaceDetectorFlagsNaive runs TestRaceDemo under -race in a subprocess
// and checks that the detector reports the naive package and fails the run.
func TestRaceDetectorFlagsNaive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness with -race in a subprocess")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("-race needs cgo and gcc, which this machine lacks")
	}
	out, err := goTest(t, "-race", "CONTEND_RACE_DEMO=1", "-run", "^TestRaceDemo$")
	require.Error(t, err, "go test -race must fail when the naive control races; output:\n%s", out)
	assert.Contains(t, out, "WARNING: DATA RACE")
	assert.Contains(t, out, "contend/impls/naive.", "the report must point into impls/naive")
}

// rerunWithoutRace is the first step of a racy-control test. Racy code
// cannot run in a -race binary (the detector would fail the whole run), so
// under -race it re-runs t's test in a subprocess built without the
// detector, with CONTEND_RACY=1, asserts that the subprocess passed and
// printed each of wants, and reports true: the caller returns. Without
// -race it reports false, and the caller runs the demonstration itself.
func rerunWithoutRace(t *testing.T, wants ...string) bool {
	t.Helper()
	if !raceflag.Enabled {
		return false
	}
	out, err := goTest(t, "", "CONTEND_RACY=1", "-run", "^"+t.Name()+"$", "-v")
	require.NoError(t, err, "the racy control subprocess failed:\n%s", out)
	for _, want := range wants {
		assert.Contains(t, out, want, "subprocess output:\n%s", out)
	}
	return true
}

// goTest runs `go test [flag] -count=1 args... .` on this package in a
// subprocess with env added, and returns its combined output.
func goTest(t *testing.T, flag, env string, args ...string) (string, error) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmdArgs := []string{"test", "-count=1"}
	if flag != "" {
		cmdArgs = append(cmdArgs, flag)
	}
	cmdArgs = append(cmdArgs, args...)
	cmdArgs = append(cmdArgs, ".")
	cmd := exec.Command(goBin, cmdArgs...)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
