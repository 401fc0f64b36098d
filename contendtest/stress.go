package contendtest

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

// StressGoroutines is the number of goroutines every stress test starts.
const StressGoroutines = 100

// StressGOMAXPROCS are the GOMAXPROCS values every stress test runs at: one
// P (goroutines interleave only at preemption points), the machine's two
// cores, and eight Ps oversubscribing them (more preemption while a lock
// or a CAS loop is held).
var StressGOMAXPROCS = []int{1, 2, 8}

// StressScale multiplies stress durations and iteration counts. It is 1,
// or 20 when the environment sets CONTEND_STRESS=long (make stress).
func StressScale() int {
	if os.Getenv("CONTEND_STRESS") == "long" {
		return 20
	}
	return 1
}

// StressBucketConfig is the configuration every bucket stress run uses on
// the real clock. 100 goroutines ask for about 1.7 tokens per attempt, far
// more often than 50,000 tokens/s even under -race on one P, so demand
// exceeds supply and the lower bound is meaningful. A rate near what a
// bucket can decide per second would test the machine, not the bucket:
// the stress check fails a run in which nothing was denied.
var StressBucketConfig = contend.BucketConfig{Capacity: 500, Rate: 50_000}

// StressDuration is how long each bucket stress run lasts, before StressScale.
const StressDuration = 200 * time.Millisecond

// minGrantFraction is the share of Supply an exact bucket must grant when
// demand exceeds it. The 2% covers the few tokens a run can leave behind at
// its end and forfeit at its start, and pauses shorter than the idle
// threshold (0.5% of the run).
const minGrantFraction = 0.98

// WithGOMAXPROCS runs f with runtime.GOMAXPROCS set to procs, and restores
// the previous value. Tests that use it must not run in parallel.
func WithGOMAXPROCS(procs int, f func()) {
	old := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(old)
	f()
}

// CheckBucketRun returns an error when run broke a correct bucket's
// bounds: granted more than Allowed, or, when demand exceeded supply,
// granted less than 98% of Supply less underGrant (0 for an exact bucket;
// for an approximate one, its stated bound: see [Approximate]).
func CheckBucketRun(run BucketRun, cfg contend.BucketConfig, underGrant int64) error {
	if run.Granted > run.Allowed {
		return fmt.Errorf("over-granted: %d tokens granted, at most %d allowed (Capacity %d + Rate %v × %v); over by %d",
			run.Granted, run.Allowed, cfg.Capacity, cfg.Rate, run.Elapsed, run.OverGrant())
	}
	if !run.DemandExceededSupply() {
		return nil
	}
	floor := int64(minGrantFraction*float64(run.Supply)) - underGrant
	if run.Granted < floor {
		return fmt.Errorf("under-granted: %d tokens granted, want at least %d (98%% of supply %d over %v busy, less under-grant bound %d); %d requested",
			run.Granted, floor, run.Supply, run.Busy, underGrant, run.Requests)
	}
	return nil
}

// StressFrozenConfig returns the configuration of the frozen-clock stress
// run: a ManualClock nobody advances, so a correct bucket grants at most its
// Capacity, exactly, and a bucket that grants a single token too many is
// caught without any timing uncertainty.
func StressFrozenConfig() contend.BucketConfig {
	return contend.BucketConfig{Capacity: 10_000, Rate: 1, Clock: contend.NewManualClock(0)}
}

// checkStressBucket runs StressGoroutines goroutines at every
// StressGOMAXPROCS, twice: on the real clock with StressBucketConfig, and
// on a frozen clock with StressFrozenConfig, and checks each run with
// CheckBucketRun. A real-clock run in which the process sat idle for more
// than half of its time proves nothing about the lower bound; it is
// retried, up to three times. A violation by a bucket declared to deviate
// from the stress check is logged, not failed.
func checkStressBucket(c *checker, nb NewBucketFunc, o *options) {
	d := StressDuration * time.Duration(StressScale())
	for _, procs := range StressGOMAXPROCS {
		WithGOMAXPROCS(procs, func() {
			for _, frozen := range []bool{false, true} {
				cfg, clock, d := StressBucketConfig, "real clock", d
				if frozen {
					// Nothing refills: a quarter of the time drains it many times over.
					cfg, clock, d = StressFrozenConfig(), "frozen clock", d/4
				}
				var run BucketRun
				var err error
				for attempt := 1; attempt <= 3; attempt++ {
					run, err = RunBucket(nb, cfg, StressGoroutines, d)
					require.NoError(c, err)
					if run.Busy >= run.Elapsed/2 {
						break
					}
					c.Logf("GOMAXPROCS %d: idle %v of %v; retrying", procs, run.Idle, run.Elapsed)
				}
				c.Logf("%s, GOMAXPROCS %d: %d attempts, %d of %d tokens requested granted; allowed %d, supply %d (busy %v of %v)",
					clock, procs, run.Attempts, run.Granted, run.Requests, run.Allowed, run.Supply, run.Busy, run.Elapsed)
				if !run.DemandExceededSupply() {
					c.Errorf("%s, GOMAXPROCS %d: no request was denied, so demand never exceeded supply: the stress configuration is too generous", clock, procs)
				}
				if err := CheckBucketRun(run, cfg, o.underGrantFor(cfg)); err != nil {
					if why, declared := o.deviates(StressDeviation); declared {
						c.Logf("%s, GOMAXPROCS %d: %v: a declared deviation: %s", clock, procs, err, why)
					} else {
						c.Errorf("%s, GOMAXPROCS %d: %v", clock, procs, err)
					}
				}
			}
		})
	}
}
