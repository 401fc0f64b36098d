package harness

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/refill"
	"github.com/contend-lab/contend/textbook"
)

// This file holds the checks that "exact" means the textbook token bucket
// (package textbook) over every window: a named regression table, a
// differential test over random sequential histories, a stalled reader, and
// random concurrent histories checked for linearizability with porcupine.

// labExact returns the lab's own exact buckets (no references, no
// controls): the ones every check here holds to the textbook bucket.
func labExact() []BucketImpl {
	var out []BucketImpl
	for _, b := range Buckets() {
		if b.Guarantee == Exact && !b.Reference {
			out = append(out, b)
		}
	}
	return out
}

// TestExactRegressionTable is the table of the issue that made "exact" mean
// the textbook bucket: capacity 1 at 1 token/s. Before, the lab's buckets
// kept tokens on a grid fixed at construction and granted at 2.0 s, two
// tokens 0.5 s apart.
func TestExactRegressionTable(t *testing.T) {
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},
		{1500 * time.Millisecond, true},
		{2000 * time.Millisecond, false}, // half a token since 1.5 s
		{2900 * time.Millisecond, true},
		{3000 * time.Millisecond, false},
	}
	impls := labExact()
	xr, ok := BucketByName("xrate")
	require.True(t, ok)
	impls = append(impls, xr)
	for _, impl := range impls {
		t.Run(impl.Name, func(t *testing.T) {
			clk := contend.NewManualClock(startOfTime)
			b, err := impl.New(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk})
			require.NoError(t, err)
			for _, s := range steps {
				clk.Set(startOfTime + int64(s.at))
				assert.Equal(t, s.want, b.TryTake(1), "TryTake(1) at %v", s.at)
			}
		})
	}
}

// oracleRun is what the differential test measured for one bucket on one
// case, over all its seeds: the row the report shows.
type oracleRun struct {
	Impl, Guarantee, Case string
	textbook.Result
}

// tolerance returns the ns within which a bucket may deny what the textbook
// bucket grants: none when the emission interval is whole nanoseconds,
// else refill.Tolerance plus the rate's rounding over a run of elapsed ns
// (package refill's documentation).
func tolerance(capacity int64, rate float64, elapsed int64) int64 {
	t := new(big.Rat).SetFloat64(rate)
	t.Quo(big.NewRat(1e9, 1), t)
	if t.IsInt() {
		return 0
	}
	burst, _ := new(big.Rat).Mul(t, new(big.Rat).SetInt64(capacity)).Float64()
	return refill.Tolerance + int64(math.Ceil((burst+float64(elapsed))/(1<<62)))
}

// replay runs one random sequential history of c on a new bucket from nb
// against the textbook bucket (textbook.Replay), on a ManualClock.
func replay(nb NewBucketFunc, c textbook.Case, seed uint64, steps int) (textbook.Result, error) {
	clk := contend.NewManualClock(startOfTime)
	b, err := nb(contend.BucketConfig{Capacity: c.Capacity, Rate: c.Rate, Clock: clk})
	if err != nil {
		return textbook.Result{}, err
	}
	// The longest run a case can make: steps times its longest gap.
	elapsed := int64(math.MaxInt64)
	if longest := int64(slices.Max(c.Gaps)); longest <= math.MaxInt64/int64(steps) {
		elapsed = longest * int64(steps)
	}
	return textbook.Replay(c, nil, tolerance(c.Capacity, c.Rate, elapsed), seed, steps, startOfTime, func(now, n int64) bool {
		clk.Set(now)
		return b.TryTake(n)
	})
}

// TestDifferentialAgainstTextbook replays random sequential histories of
// every case through every registered bucket and the textbook bucket.
// Exact: no over-grant, no denial outside the tolerance, no window over its
// bound. Approximate: windows within Capacity + Rate × W + BurstExcess.
// References with a declared "textbook" deviation must still deviate.
// Racy and broken buckets are measured, not judged; with
// CONTEND_EXACT_OUT set to a directory, every measurement is written to
// textbook.jsonl there, for the report.
func TestDifferentialAgainstTextbook(t *testing.T) {
	const steps = 300
	seeds := []uint64{1, 2, 3}
	var out []oracleRun
	for _, impl := range Buckets() {
		t.Run(impl.Name, func(t *testing.T) {
			deviations := 0
			for _, c := range textbook.Cases() {
				total := oracleRun{Impl: impl.Name, Guarantee: impl.Guarantee.String(), Case: c.Name}
				total.WindowExcess = math.Inf(-1)
				for _, seed := range seeds {
					run, err := replay(impl.New, c, seed, steps)
					if impl.Guarantee.Correct() {
						require.NoError(t, err, "%s", c.Name)
					} else if err != nil {
						t.Logf("%s: %v", c.Name, err)
						continue
					}
					total.Decisions += run.Decisions
					total.OverGrants += run.OverGrants
					total.WrongDenials += run.WrongDenials
					total.Tolerated += run.Tolerated
					total.WindowExcess = max(total.WindowExcess, run.WindowExcess)
					total.FirstWrong = cmp.Or(total.FirstWrong, run.FirstWrong)
				}
				out = append(out, total)
				if _, declared := impl.Deviations[TextbookDeviation]; declared {
					deviations += total.OverGrants + total.WrongDenials
					continue
				}
				switch impl.Guarantee {
				case Exact:
					assert.Zero(t, total.OverGrants, "%s: granted what the textbook bucket refused (%s)", c.Name, total.FirstWrong)
					assert.Zero(t, total.WrongDenials, "%s: denied what the textbook bucket granted, beyond the tolerance (%s)", c.Name, total.FirstWrong)
					assert.LessOrEqual(t, total.WindowExcess, 0.0, "%s: a window over Capacity + Rate × W", c.Name)
					if tolerance(c.Capacity, c.Rate, 0) == 0 {
						assert.Zero(t, total.Tolerated, "%s: the interval is whole ns, so there is no tolerance", c.Name)
					}
				case Approximate:
					excess := float64(impl.BurstExcess(contend.BucketConfig{Capacity: c.Capacity, Rate: c.Rate}))
					assert.LessOrEqual(t, total.WindowExcess, excess, "%s: a window over Capacity + Rate × W + %v", c.Name, excess)
				default:
					if total.OverGrants+total.WrongDenials > 0 {
						t.Logf("%s (%s): %d over-grants, %d wrong denials of %d; worst window %+.3g tokens",
							c.Name, impl.Guarantee, total.OverGrants, total.WrongDenials, total.Decisions, total.WindowExcess)
					}
				}
			}
			if why, declared := impl.Deviations[TextbookDeviation]; declared {
				assert.Positive(t, deviations, "%s declares %q (%s) but agrees with the textbook bucket: remove it", impl.Name, TextbookDeviation, why)
				t.Logf("%s deviates as declared (%s): %d disagreements", impl.Name, why, deviations)
			}
		})
	}
	writeExactOut(t, "textbook.jsonl", out)
}

// writeExactOut writes rows as JSON lines to name in the directory
// CONTEND_EXACT_OUT names, if it is set (make bench sets it).
func writeExactOut[T any](t *testing.T, name string, rows []T) {
	dir := os.Getenv("CONTEND_EXACT_OUT")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	require.NoError(t, err)
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range rows {
		require.NoError(t, enc.Encode(r))
	}
}

// stallClock reads its inner clock and, on the reading it is armed for,
// runs stall before returning that reading: a caller that read the clock,
// then stalled (preempted, a GC pause) before deciding.
type stallClock struct {
	inner *contend.ManualClock
	mu    sync.Mutex
	stall func()
}

func (c *stallClock) Now() int64 {
	t := c.inner.Now()
	c.mu.Lock()
	f := c.stall
	c.stall = nil
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return t
}

// TestStalledReader: capacity 2, one token left at 1 s. Call A reads the
// clock and stalls; meanwhile the clock reaches 2 s and call B is granted a
// token. A token was available throughout A's call, so A must be granted
// too (a bucket that decides on A's old reading against B's newer state
// refuses it: not linearizable). Then the bucket is empty.
func TestStalledReader(t *testing.T) {
	for _, impl := range labExact() {
		t.Run(impl.Name, func(t *testing.T) {
			clk := &stallClock{inner: contend.NewManualClock(startOfTime)}
			b, err := impl.New(contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk})
			require.NoError(t, err)
			require.True(t, b.TryTake(2))
			clk.inner.Set(startOfTime + 1e9) // one token
			var bGranted atomic.Bool
			bDone := make(chan struct{})
			clk.stall = func() {
				clk.inner.Set(startOfTime + 2e9) // a second token
				go func() { bGranted.Store(b.TryTake(1)); close(bDone) }()
				select { // B may block on a lock A holds: then it runs after A
				case <-bDone:
				case <-time.After(50 * time.Millisecond):
				}
			}
			assert.True(t, b.TryTake(1), "A: denied a token that was there throughout its call")
			<-bDone
			assert.True(t, bGranted.Load(), "B")
			assert.False(t, b.TryTake(1), "the bucket holds no third token at 2 s")
		})
	}
}

// concurrentHistory runs goroutines × ops random requests on b while a
// driver moves clk forward in random steps, and returns the history for
// porcupine and every reading the clock took.
func concurrentHistory(b contend.Bucket, clk *contend.ManualClock, capacity int64, step time.Duration, seed uint64, goroutines, ops int) ([]porcupine.Operation, []int64) {
	var seq atomic.Int64
	var mu sync.Mutex
	var history []porcupine.Operation
	readings := []int64{clk.Now()}
	var running atomic.Int64
	running.Store(int64(goroutines))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			defer running.Add(-1)
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for range ops {
				n := 1 + rng.Int64N(capacity)
				call := seq.Add(1)
				from := clk.Now()
				ok := b.TryTake(n)
				to := clk.Now()
				ret := seq.Add(1)
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: g, Input: textbook.Request{N: n, From: from, To: to}, Call: call, Output: ok, Return: ret})
				mu.Unlock()
				// Paced, so that tokens build up and a stale decision can
				// refuse one that was there all along.
				time.Sleep(time.Duration(rng.Int64N(int64(step) / 20)))
			}
		})
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for running.Load() > 0 {
		time.Sleep(20 * time.Microsecond)
		clk.Advance(time.Duration(rng.Int64N(int64(step))))
		mu.Lock()
		readings = append(readings, clk.Now())
		mu.Unlock()
	}
	wg.Wait()
	return history, readings
}

// TestLinearizableAgainstTextbook checks random concurrent histories of every
// exact lab bucket for linearizability against the textbook bucket with the
// clock in the model (textbook.Model), on a rate whose interval is whole
// nanoseconds (no tolerance) and on one whose is not.
func TestLinearizableAgainstTextbook(t *testing.T) {
	cases := []struct {
		capacity int64
		rate     float64
		step     time.Duration
	}{
		{2, 1000, time.Millisecond}, // T = 1 ms
		{3, 3000, time.Millisecond}, // T = 333,333.33 ns
	}
	const histories = 30
	for _, impl := range labExact() {
		t.Run(impl.Name, func(t *testing.T) {
			for _, c := range cases {
				tol := tolerance(c.capacity, c.rate, int64(time.Hour))
				for seed := range uint64(histories) {
					// Readings go stale (staleClock yields before returning one),
					// as they do when a goroutine is preempted after reading.
					clk := contend.NewManualClock(startOfTime)
					b, err := impl.New(contend.BucketConfig{Capacity: c.capacity, Rate: c.rate, Clock: staleClock{clk}})
					require.NoError(t, err)
					history, readings := concurrentHistory(b, clk, c.capacity, c.step, seed, 4, 15)
					model := textbook.Model(c.capacity, c.rate, readings, tol)
					res, info := porcupine.CheckOperationsVerbose(model, history, 10*time.Second)
					if !assert.Equal(t, porcupine.Ok, res, "capacity %d rate %v seed %d", c.capacity, c.rate, seed) {
						path := fmt.Sprintf("%s/%s-%d.html", t.TempDir(), impl.Name, seed)
						if porcupine.VisualizePath(model, info, path) == nil {
							t.Logf("history: %s", path)
						}
						return
					}
				}
			}
		})
	}
}

// staleClock returns its inner clock's reading after yielding (one reading
// in eight, after sleeping 30 µs), so that the reading is often older than
// another goroutine's by the time it is used.
type staleClock struct{ inner *contend.ManualClock }

func (c staleClock) Now() int64 {
	t := c.inner.Now()
	if rand.IntN(8) == 0 {
		time.Sleep(30 * time.Microsecond)
	} else {
		runtime.Gosched()
	}
	return t
}

// surelyInsideExcess returns the most tokens granted over a window [a, b]
// of clock readings beyond capacity + rate × (b − a), counting only grants
// whose whole call (first and last reading) lies inside the window: those
// were decided inside it, whatever reading the bucket used.
func surelyInsideExcess(calls []windowCall, capacity int64, rate float64) float64 {
	ticks := map[int64]bool{}
	for _, c := range calls {
		ticks[c.from], ticks[c.to] = true, true
	}
	sorted := make([]int64, 0, len(ticks))
	for t := range ticks {
		sorted = append(sorted, t)
	}
	slices.Sort(sorted)
	index := make(map[int64]int, len(sorted))
	for i, t := range sorted {
		index[t] = i
	}
	byFrom := make([][]windowCall, len(sorted))
	for _, c := range calls {
		byFrom[index[c.from]] = append(byFrom[index[c.from]], c)
	}
	perNs := rate / 1e9
	best := math.Inf(-1)
	tokensTo := make([]int64, len(sorted)) // tokens of calls from >= a, by the index of to
	for a := len(sorted) - 1; a >= 0; a-- {
		for _, c := range byFrom[a] {
			tokensTo[index[c.to]] += c.n
		}
		var sum int64
		for b := a; b < len(sorted); b++ {
			sum += tokensTo[b]
			best = max(best, float64(sum)-float64(capacity)-perNs*float64(sorted[b]-sorted[a]))
		}
	}
	return best
}

// windowCall is a granted call with its first and last clock reading.
type windowCall struct {
	from, to int64
	n        int64
}

// TestStaleReadingsNeverOverGrant: 100 goroutines on a clock whose readings
// go stale (each is returned after a yield), while a driver advances it.
// No window of an exact bucket grants more than Capacity + Rate × W; the
// approximate one stays within its stated excess; x/time/rate's over-grant
// (golang/go#56287) still shows, within a bounded number of tries.
func TestStaleReadingsNeverOverGrant(t *testing.T) {
	const capacity, rate = 50, 100_000 // T = 10 µs
	run := func(impl BucketImpl) float64 {
		inner := contend.NewManualClock(startOfTime)
		b, err := impl.New(contend.BucketConfig{Capacity: capacity, Rate: rate, Clock: staleClock{inner}})
		require.NoError(t, err)
		var mu sync.Mutex
		var calls []windowCall
		var running atomic.Int64
		running.Store(StressGoroutines)
		var wg sync.WaitGroup
		for g := range StressGoroutines {
			wg.Go(func() {
				defer running.Add(-1)
				for i := range 60 {
					n := int64(1 + (g+i)%3)
					from := inner.Now()
					if b.TryTake(n) {
						to := inner.Now()
						mu.Lock()
						calls = append(calls, windowCall{from, to, n})
						mu.Unlock()
					}
				}
			})
		}
		for running.Load() > 0 {
			inner.Advance(time.Duration(rand.Int64N(20_000)))
			runtime.Gosched()
		}
		wg.Wait()
		var granted int64
		for _, c := range calls {
			granted += c.n
		}
		require.Greater(t, granted, int64(capacity), "%s: granted too little to test anything", impl.Name)
		return surelyInsideExcess(calls, capacity, rate)
	}
	// staleRun is one row of stale.jsonl: the worst window of an
	// implementation's runs, against the excess its guarantee allows.
	type staleRun struct {
		Impl, Guarantee string
		Runs            int
		WorstExcess     float64 // tokens over Capacity + Rate × W, in the worst window of any run
		Allowed         float64
	}
	var rows []staleRun
	for _, impl := range Buckets() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			WithGOMAXPROCS(8, func() {
				row := staleRun{Impl: impl.Name, Guarantee: impl.Guarantee.String(), WorstExcess: math.Inf(-1)}
				defer func() { rows = append(rows, row) }()
				if _, deviates := impl.Deviations[StressDeviation]; deviates {
					for ; row.Runs < 20 && row.WorstExcess <= 0; row.Runs++ {
						row.WorstExcess = max(row.WorstExcess, run(impl))
					}
					if assert.Positive(t, row.WorstExcess, "%s: the declared stale-reading over-grant never showed in 20 runs", impl.Name) {
						t.Logf("%s over-granted a window by %.1f tokens, as declared", impl.Name, row.WorstExcess)
					}
					return
				}
				if impl.Guarantee == Approximate {
					row.Allowed = float64(impl.BurstExcess(contend.BucketConfig{Capacity: capacity, Rate: rate}))
				}
				for ; row.Runs < 2; row.Runs++ {
					worst := run(impl)
					row.WorstExcess = max(row.WorstExcess, worst)
					assert.LessOrEqual(t, worst, row.Allowed, "%s: a window over Capacity + Rate × W + %v", impl.Name, row.Allowed)
				}
			})
		})
	}
	writeExactOut(t, "stale.jsonl", rows)
}
