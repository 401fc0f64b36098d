package contendtest

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/linearize"
)

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

// checkHistory checks one history against model, counts it into sum, and
// logs where its drawing is if it is Illegal.
func checkHistory(c *checker, sum *linearize.Summary, model porcupine.Model, history []porcupine.Operation) linearize.Verdict {
	v, err := linearize.Check(model, history, checkTimeout, c.historiesDir(), sum.Family)
	require.NoError(c, err)
	sum.Add(v)
	if v.Visualization != "" {
		c.Logf("%s, %s: history of %d operations is not linearizable; drawn in %s", sum.Family, sum.Scenario, v.Ops, v.Visualization)
	}
	return v
}

// checkAtEveryProcs records historiesPerRun histories with record at each
// StressGOMAXPROCS, checks them against model, hands each GOMAXPROCS's
// summary to OnHistories, and asserts it linearizable.
func checkAtEveryProcs(c *checker, o *options, family string, model porcupine.Model, record func() []porcupine.Operation) {
	for _, procs := range StressGOMAXPROCS {
		sum := linearize.Summary{Family: family, Scenario: fmt.Sprintf("stress, GOMAXPROCS %d", procs)}
		WithGOMAXPROCS(procs, func() {
			for range historiesPerRun * StressScale() {
				checkHistory(c, &sum, model, record())
			}
		})
		c.Logf("%s: %s (%d histories, %d operations)", sum.Scenario, sum.Verdict, sum.Histories, sum.Ops)
		if o.onHistories != nil {
			o.onHistories(sum)
		}
		assert.Equal(c, porcupine.Ok, sum.Verdict, "%s: %d of %d histories not linearizable (first drawn in %s)",
			sum.Scenario, sum.Illegal, sum.Histories, sum.Visualization)
	}
}
