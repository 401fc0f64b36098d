package contendtest_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/linearize"
)

// TestFamilies runs each family's checks, as a user's test would, on the
// examples' implementations, which keep their contracts; and checks that
// OnHistories hands over one summary per GOMAXPROCS.
func TestFamilies(t *testing.T) {
	var sums []linearize.Summary
	collect := contendtest.OnHistories(func(s linearize.Summary) { sums = append(sums, s) })
	t.Run("counter", func(t *testing.T) { contendtest.Counter(t, newAtomicCounter, collect) })
	t.Run("bucket", func(t *testing.T) { contendtest.Bucket(t, newMutexBucket) })
	t.Run("lock", func(t *testing.T) {
		contendtest.Lock(t, func() contend.Lock { return newFaultyLock("") }, contendtest.FIFO(), collect)
	})
	t.Run("semaphore", func(t *testing.T) {
		contendtest.Semaphore(t, newMutexSemaphore, collect,
			contendtest.Deviates("tokens-follow-grants", "Release wakes every waiter instead of serving the first"))
	})
	var got []string
	for _, s := range sums {
		assert.Equal(t, porcupine.Ok, s.Verdict, "%s %s", s.Family, s.Scenario)
		assert.Positive(t, s.Histories, "%s %s", s.Family, s.Scenario)
		got = append(got, s.Family+", "+s.Scenario)
	}
	assert.Equal(t, []string{
		"counter, stress, GOMAXPROCS 1", "counter, stress, GOMAXPROCS 2", "counter, stress, GOMAXPROCS 8",
		"lock, stress, GOMAXPROCS 1", "lock, stress, GOMAXPROCS 2", "lock, stress, GOMAXPROCS 8",
		"semaphore, stress, GOMAXPROCS 1", "semaphore, stress, GOMAXPROCS 2", "semaphore, stress, GOMAXPROCS 8",
	}, got)
}

// TestOptionsRefused: options that do not fit the family, or say nothing,
// fail a check at once, as does the zero Check.
func TestOptionsRefused(t *testing.T) {
	counterCheck := find(t, contendtest.CounterChecks(), "starts-at-zero")
	lockCheck := find(t, contendtest.LockChecks(), "try-acquire")
	newLock := func() contend.Lock { return newFaultyLock("") }
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"zero option", func() error { return counterCheck.Run(t, newAtomicCounter, contendtest.Option{}) }, "a zero Option"},
		{"lock option on a counter", func() error { return counterCheck.Run(t, newAtomicCounter, contendtest.FIFO()) }, "option FIFO does not apply to a counter"},
		{"bucket option on a lock", func() error { return lockCheck.Run(t, newLock, contendtest.Approximate(nil, nil)) }, "option Approximate does not apply to a lock"},
		{"counter option on a lock", func() error { return lockCheck.Run(t, newLock, contendtest.LoadNotLinearizable()) }, "does not apply to a lock"},
		{"unknown check", func() error { return lockCheck.Run(t, newLock, contendtest.Deviates("nosuch", "why")) }, `a deviation from "nosuch", which is not a lock check`},
		{"deviation without why", func() error { return lockCheck.Run(t, newLock, contendtest.Deviates("fifo", "")) }, "must say what the implementation does instead"},
		{"weak try without why", func() error { return lockCheck.Run(t, newLock, contendtest.WeakTryAcquire("")) }, "must say how"},
		{"zero check", func() error { return contendtest.Check[func() contend.Lock]{}.Run(t, newLock) }, "a zero Check"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorContains(t, tc.run(), tc.want)
		})
	}
}

// TestDeviations: a check declared deviating must fail, and then passes;
// one that passes fails, asking for the declaration to go. The bucket
// checks that read their own declarations: stress tolerates a violation,
// stale-readings must show one, textbook must disagree, and the checks
// against the textbook model are skipped.
func TestDeviations(t *testing.T) {
	bucketCheck := func(name string) contendtest.Check[contendtest.NewBucketFunc] {
		return find(t, contendtest.BucketChecks(), name)
	}
	declared := func(check string) contendtest.Option { return contendtest.Deviates(check, "by design") }
	overGrants := newFaulty("takes only one token")
	t.Run("fails as declared", func(t *testing.T) {
		assert.NoError(t, bucketCheck("starts-full").Run(t, newFaulty("starts empty"), declared("starts-full")))
		assert.NoError(t, find(t, contendtest.LockChecks(), "release-twice").Run(t,
			func() contend.Lock { return newFaultyLock("release-twice-frees") }, declared("release-twice")))
	})
	t.Run("declared but passes", func(t *testing.T) {
		assert.ErrorContains(t, bucketCheck("starts-full").Run(t, newFaulty(""), declared("starts-full")), "remove the declaration")
		assert.ErrorContains(t, find(t, contendtest.CounterChecks(), "stress").Run(t, newAtomicCounter, declared("stress")), "remove the declaration")
	})
	t.Run("stress tolerates", func(t *testing.T) {
		assert.NoError(t, bucketCheck("stress").Run(t, overGrants, declared(contendtest.StressDeviation)))
	})
	t.Run("stale-readings must show it", func(t *testing.T) {
		// A plain run may miss a bucket that over-grants under stale
		// readings; one in 20 does not.
		caught := false
		for try := 0; try < 20 && !caught; try++ {
			caught = bucketCheck("stale-readings").Run(t, overGrants) != nil
		}
		assert.True(t, caught, "stale-readings never caught a bucket that takes one token for any request")
		assert.NoError(t, bucketCheck("stale-readings").Run(t, overGrants, declared(contendtest.StressDeviation)))
		assert.ErrorContains(t, bucketCheck("stale-readings").Run(t, newFaulty(""), declared(contendtest.StressDeviation)),
			"no window went over")
	})
	t.Run("textbook must disagree", func(t *testing.T) {
		early := newFaulty("refills 1 ns early")
		assert.NoError(t, bucketCheck("textbook").Run(t, early, declared(contendtest.TextbookDeviation)))
		assert.ErrorContains(t, bucketCheck("textbook").Run(t, newFaulty(""), declared(contendtest.TextbookDeviation)), "agrees with it")
		for _, name := range []string{"stalled-reader", "linearizable"} {
			assert.ErrorIs(t, bucketCheck(name).Run(t, early, declared(contendtest.TextbookDeviation)), contendtest.ErrSkipped, name)
		}
	})
	t.Run("no fencing", func(t *testing.T) {
		// A lock whose every lease carries token 1 fails the checks that
		// read tokens as fencing tokens, and passes them declared
		// NoFencing; its tokens still fail tokens-increase.
		repeated := func() contend.Lock { return newFaultyLock("repeated-tokens") }
		for _, name := range []string{"stress", "linearizable"} {
			check := find(t, contendtest.LockChecks(), name)
			assert.Error(t, check.Run(t, repeated), name)
			assert.NoError(t, check.Run(t, repeated, contendtest.NoFencing()), name)
		}
		assert.Error(t, find(t, contendtest.LockChecks(), "tokens-increase").Run(t, repeated, contendtest.NoFencing()))
		// A semaphore declared NoFencing must still deviate from
		// tokens-follow-grants; one that follows grants does not.
		follows := find(t, contendtest.SemaphoreChecks(), "tokens-follow-grants")
		assert.NoError(t, follows.Run(t, newFaultySemaphore("")))
		assert.Error(t, follows.Run(t, newFaultySemaphore(""), contendtest.NoFencing()))
	})
	t.Run("approximate", func(t *testing.T) {
		// pershard-like bounds: the textbook check holds an approximate
		// bucket to its stated window excess only.
		excess := func(contend.BucketConfig) int64 { return 1 }
		approx := contendtest.Approximate(nil, excess)
		assert.NoError(t, bucketCheck("textbook").Run(t, newFaulty(""), approx))
		assert.Error(t, bucketCheck("textbook").Run(t, newFaulty("keeps tokens beyond capacity"), approx), "a window far over the stated excess")
		for _, name := range []string{"refill-after-take", "stalled-reader", "linearizable"} {
			assert.ErrorIs(t, bucketCheck(name).Run(t, newFaulty(""), approx), contendtest.ErrSkipped, name)
		}
	})
}

// TestSkipped: a check that does not apply, or needs a *testing.T it was
// not given, says so with ErrSkipped.
func TestSkipped(t *testing.T) {
	newLock := func() contend.Lock { return newFaultyLock("") }
	fifo := find(t, contendtest.LockChecks(), "fifo")
	assert.ErrorIs(t, fifo.Run(t, newLock), contendtest.ErrSkipped)
	assert.NoError(t, fifo.Run(t, newLock, contendtest.FIFO()))
	assert.ErrorIs(t, find(t, contendtest.CounterChecks(), "linearizable").Run(t, newAtomicCounter, contendtest.LoadNotLinearizable()), contendtest.ErrSkipped)
	bubble := find(t, contendtest.BucketChecks(), "synctest-bubble")
	assert.ErrorIs(t, bubble.Run(nil, newMutexBucket), contendtest.ErrSkipped)
	assert.NoError(t, bubble.Run(t, newMutexBucket))
}

// TestPanicIsAnError: a panicking implementation fails a check with the
// panic, instead of crashing the test binary.
func TestPanicIsAnError(t *testing.T) {
	panics := func() contend.Counter { panic("no counter today") }
	err := find(t, contendtest.CounterChecks(), "starts-at-zero").Run(t, panics)
	assert.ErrorContains(t, err, "panic: no counter today")
	assert.False(t, errors.Is(err, contendtest.ErrSkipped))
}

// familyEnv names the family TestFaultyUnderFamily runs, in a subprocess
// of TestFamiliesFail.
const familyEnv = "CONTENDTEST_FAULTY_FAMILY"

// TestFaultyUnderFamily runs a family's function on an implementation
// with a fault; it is run by TestFamiliesFail, in a subprocess, and
// skipped otherwise.
func TestFaultyUnderFamily(t *testing.T) {
	switch os.Getenv(familyEnv) {
	case "":
		t.Skip("run by TestFamiliesFail")
	case "counter":
		contendtest.Counter(t, newLostUpdateCounter)
	case "bucket":
		contendtest.Bucket(t, newFaulty("accepts impossible requests"))
	case "lock":
		contendtest.Lock(t, func() contend.Lock { return newFaultyLock("release-twice-frees") })
	case "semaphore":
		contendtest.Semaphore(t, newFaultySemaphore("plain-capacity-error"))
	case "option":
		contendtest.Counter(t, newAtomicCounter, contendtest.FIFO())
	}
}

// TestFamiliesFail runs Counter, Bucket, Lock and Semaphore on faulty
// implementations in subprocesses (the test binary itself), and asserts
// that each failed the test, in the subtest of the check that catches the
// fault; and that an option that does not apply fails it at once.
func TestFamiliesFail(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary again")
	}
	tests := []struct{ family, want string }{
		{"counter", "--- FAIL: TestFaultyUnderFamily/stress"},
		{"bucket", "--- FAIL: TestFaultyUnderFamily/impossible-requests"},
		{"lock", "--- FAIL: TestFaultyUnderFamily/release-twice"},
		{"semaphore", "--- FAIL: TestFaultyUnderFamily/bad-capacity"},
		{"option", "option FIFO does not apply to a counter"},
	}
	for _, tc := range tests {
		t.Run(tc.family, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFaultyUnderFamily$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), familyEnv+"="+tc.family)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the test must fail; output:\n%s", out)
			assert.Contains(t, string(out), tc.want)
			assert.True(t, strings.Contains(string(out), "--- FAIL: TestFaultyUnderFamily"), "output:\n%s", out)
		})
	}
}

// TestZeroValues: the zero value of every exported type works or refuses
// at once. Option and Check refuse (TestOptionsRefused); the runs'
// summaries of nothing are 0.
func TestZeroValues(t *testing.T) {
	assert.NotPanics(t, func() {
		assert.Zero(t, contendtest.CounterRun{}.Lost())
		assert.Zero(t, contendtest.CounterRun{}.LostFraction())
		assert.Zero(t, contendtest.BucketRun{}.OverGrant())
		assert.Zero(t, contendtest.BucketRun{}.GrantRatio())
		assert.False(t, contendtest.BucketRun{}.DemandExceededSupply())
		assert.Zero(t, contendtest.LockRun{}.P(0.99))
		assert.Zero(t, contendtest.LockRun{}.JainFairness())
		assert.Zero(t, contendtest.SemaphoreRun{}.P(0.99))
		assert.Zero(t, contendtest.SemaphoreRun{}.JainFairness())
	})
	assert.NoError(t, contendtest.CheckCounterRun(contendtest.CounterRun{}))
	assert.NoError(t, contendtest.CheckBucketRun(contendtest.BucketRun{}, contendtest.StressBucketConfig, 0))
}

func TestLatencyAndFairness(t *testing.T) {
	for _, tc := range []struct {
		counts []int64
		want   float64
	}{
		{[]int64{5, 5, 5, 5}, 1},
		{[]int64{8, 0, 0, 0}, 0.25},
		{[]int64{0, 0}, 0},
		{nil, 0},
	} {
		assert.InDelta(t, tc.want, contendtest.JainFairness(tc.counts), 1e-12, "%v", tc.counts)
	}
	h := contendtest.NewLatencyHistogram()
	for d := range 100 {
		contendtest.RecordLatency(h, time.Duration(d+1)*time.Microsecond)
	}
	contendtest.RecordLatency(h, -time.Second) // clamped to 1 ns
	contendtest.RecordLatency(h, time.Hour)    // clamped to a minute
	assert.Equal(t, int64(102), h.TotalCount())
	assert.InEpsilon(t, 50*time.Microsecond, contendtest.Quantile(h, 0.5), 0.02)
	assert.InEpsilon(t, time.Minute, contendtest.Quantile(h, 1), 0.02)
}
