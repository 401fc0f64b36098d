package contendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/linearize"
)

// Counter runs every check of [CounterChecks] on counters newCounter
// builds, each as a subtest of t, held to what opts declare: exact
// (linearizable) unless [LoadNotLinearizable]. The stress and
// linearizability checks set GOMAXPROCS: do not call Counter from
// parallel tests.
func Counter(t *testing.T, newCounter func() contend.Counter, opts ...Option) {
	t.Helper()
	if newCounter == nil {
		t.Fatal("contendtest.Counter: newCounter is nil")
	}
	runAll(t, counterFamily, CounterChecks(), newCounter, opts)
}

// CounterChecks returns the counter checks, in a stable order: the
// sequential ones, then the concurrent ones.
func CounterChecks() []Check[func() contend.Counter] {
	plain := func(name, doc string, check func(func() contend.Counter) error) Check[func() contend.Counter] {
		return Check[func() contend.Counter]{name: name, doc: doc, family: counterFamily, run: fromError(check)}
	}
	return []Check[func() contend.Counter]{
		plain("starts-at-zero", "a new counter loads 0", checkCounterZero),
		plain("exact-sequential", "after each of a mixed-sign sequence of Adds, Load returns the running sum", checkCounterSequential),
		plain("wraps-like-int64", "overflow wraps around as int64 addition does", checkCounterWraps),
		{name: "stress", doc: "100 goroutines adding a mixed-sign sequence at GOMAXPROCS 1, 2 and 8 lose no update",
			family: counterFamily, run: checkStressCounter},
		{name: "linearizable", doc: "histories of 8 goroutines' Adds and Loads at GOMAXPROCS 1, 2 and 8 are linearizable (porcupine)",
			family: counterFamily, run: checkLinearizableCounter},
	}
}

// CheckCounterRun returns an error when run lost updates.
func CheckCounterRun(run CounterRun) error {
	if run.Lost() != 0 {
		return fmt.Errorf("lost updates: want %d, loaded %d (lost %d) with %d goroutines", run.Want, run.Got, run.Lost(), run.Goroutines)
	}
	return nil
}

// checkStressCounter runs StressGoroutines goroutines adding a mixed-sign
// sequence at every StressGOMAXPROCS, and checks that no update was lost.
func checkStressCounter(c *checker, nc func() contend.Counter, _ *options) {
	adds := 2000 * StressScale()
	for _, procs := range StressGOMAXPROCS {
		WithGOMAXPROCS(procs, func() {
			if err := CheckCounterRun(RunCounter(nc(), StressGoroutines, adds)); err != nil {
				c.Errorf("GOMAXPROCS %d: %v", procs, err)
			}
		})
	}
}

// checkLinearizableCounter checks histories of Adds and Loads at every
// StressGOMAXPROCS against the counter model.
func checkLinearizableCounter(c *checker, nc func() contend.Counter, o *options) {
	if o.approximate {
		c.skip("declared LoadNotLinearizable")
	}
	checkAtEveryProcs(c, o, "counter", linearize.Counter, func() []porcupine.Operation {
		return RecordCounter(nc(), historyClients, counterOps, counterLoadEvery)
	})
}

func checkCounterZero(nc func() contend.Counter) error {
	if got := nc().Load(); got != 0 {
		return fmt.Errorf("new counter loads %d", got)
	}
	return nil
}

func checkCounterSequential(nc func() contend.Counter) error {
	c := nc()
	var want int64
	for i := 0; i < 1000; i++ {
		d := counterDeltas[i%len(counterDeltas)] * int64(i)
		c.Add(d)
		want += d
		if got := c.Load(); got != want {
			return fmt.Errorf("after Add %d (delta %d): Load = %d, want %d", i+1, d, got, want)
		}
	}
	return nil
}

func checkCounterWraps(nc func() contend.Counter) error {
	c := nc()
	c.Add(math.MaxInt64)
	c.Add(1)
	if got := c.Load(); got != math.MinInt64 {
		return fmt.Errorf("MaxInt64 + 1 = %d, want %d", got, int64(math.MinInt64))
	}
	c.Add(-1)
	if got := c.Load(); got != math.MaxInt64 {
		return fmt.Errorf("MinInt64 - 1 = %d, want %d", got, int64(math.MaxInt64))
	}
	return nil
}
