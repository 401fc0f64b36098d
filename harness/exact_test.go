package harness

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/textbook"
)

// The checks that "exact" means the textbook token bucket (package
// textbook) are contendtest's textbook, stalled-reader, linearizable and
// stale-readings checks, which TestBucketConformance runs on every
// correct bucket. The two tests here measure what the report shows of
// them, for every bucket, the racy and broken ones included; make bench
// runs them with CONTEND_EXACT_OUT set to a directory, and they write
// textbook.jsonl and stale.jsonl there. Without it they are skipped.

// exactOut returns the directory CONTEND_EXACT_OUT names, or skips t.
func exactOut(t *testing.T) string {
	dir := os.Getenv("CONTEND_EXACT_OUT")
	if dir == "" {
		t.Skip("TestBucketConformance runs the checks; make bench (CONTEND_EXACT_OUT) measures them here for the report")
	}
	return dir
}

// oracleRun is what the differential test measured for one bucket on one
// case, over all its seeds: the row the report shows.
type oracleRun struct {
	Impl, Guarantee, Case string
	textbook.Result
}

// TestDifferentialAgainstTextbook replays random sequential histories of
// every case through every registered bucket and the textbook bucket
// (contendtest.ReplayTextbook), and writes what it measured to
// textbook.jsonl.
func TestDifferentialAgainstTextbook(t *testing.T) {
	dir := exactOut(t)
	const steps = 300
	seeds := []uint64{1, 2, 3}
	var out []oracleRun
	for _, impl := range Buckets() {
		for _, c := range textbook.Cases() {
			total, err := contendtest.ReplayTextbook(impl.New, c, seeds, steps)
			if err != nil {
				t.Logf("%s, %s: %v", impl.Name, c.Name, err)
			}
			out = append(out, oracleRun{Impl: impl.Name, Guarantee: impl.Guarantee.String(), Case: c.Name, Result: total})
		}
	}
	writeExactOut(t, dir, "textbook.jsonl", out)
}

// staleRun is one row of stale.jsonl: the worst window of an
// implementation's runs, against the excess its guarantee allows.
type staleRun struct {
	Impl, Guarantee string
	Runs            int
	WorstExcess     float64 // tokens over Capacity + Rate × W, in the worst window of any run
	Allowed         float64
}

// TestStaleReadingsNeverOverGrant measures every correct bucket as
// contendtest's stale-readings check does (contendtest.StaleReadings at
// GOMAXPROCS 8: 2 runs, or up to 20 until one over-grants for a bucket
// declared to break the stress bounds), and writes the worst window to
// stale.jsonl.
func TestStaleReadingsNeverOverGrant(t *testing.T) {
	dir := exactOut(t)
	var rows []staleRun
	for _, impl := range Buckets() {
		if !impl.Guarantee.Correct() {
			continue
		}
		row := staleRun{Impl: impl.Name, Guarantee: impl.Guarantee.String(), WorstExcess: math.Inf(-1)}
		if impl.Guarantee == Approximate {
			row.Allowed = float64(impl.BurstExcess(contendtest.StaleReadingsConfig))
		}
		_, deviates := impl.Deviations[StressDeviation]
		runs := 2
		if deviates {
			runs = 20
		}
		contendtest.WithGOMAXPROCS(8, func() {
			for ; row.Runs < runs && !(deviates && row.WorstExcess > 0); row.Runs++ {
				worst, err := contendtest.StaleReadings(impl.New)
				require.NoError(t, err, impl.Name)
				row.WorstExcess = max(row.WorstExcess, worst)
			}
		})
		rows = append(rows, row)
	}
	writeExactOut(t, dir, "stale.jsonl", rows)
}

// writeExactOut writes rows as JSON lines to name in dir.
func writeExactOut[T any](t *testing.T, dir, name string, rows []T) {
	f, err := os.Create(filepath.Join(dir, name))
	require.NoError(t, err)
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range rows {
		require.NoError(t, enc.Encode(r))
	}
}
