package contendtest

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/refill"
	"github.com/contend-lab/contend/textbook"
)

// The checks that "exact" means the textbook token bucket (package
// textbook) over every window: a regression table, a differential test
// over random sequential histories, a stalled reader, random concurrent
// histories checked for linearizability with porcupine, and stale clock
// readings under contention.

// againstTextbook skips a check that holds a bucket to the textbook
// bucket's decisions, for one that is approximate or declared to deviate
// from the textbook bucket.
func againstTextbook(c *checker, o *options) {
	if o.approximate {
		c.skip("an approximate bucket is not held to the textbook bucket's decisions")
	}
	if why, declared := o.deviates(TextbookDeviation); declared {
		c.skip("declared to deviate from the textbook bucket: %s", why)
	}
}

// checkRefillAfterTake is the table of the issue that made "exact" mean
// the textbook bucket: capacity 1 at 1 token/s. Before, the lab's buckets
// kept tokens on a grid fixed at construction and granted at 2.0 s, two
// tokens 0.5 s apart.
func checkRefillAfterTake(c *checker, nb NewBucketFunc, o *options) {
	if o.approximate {
		c.skip("an approximate bucket may keep a partial token")
	}
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
	clk := contend.NewManualClock(startOfTime)
	b, err := nb(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk})
	require.NoError(c, err)
	for _, s := range steps {
		clk.Set(startOfTime + int64(s.at))
		assert.Equal(c, s.want, b.TryTake(1), "TryTake(1) at %v", s.at)
	}
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

// ReplayTextbook replays one random sequential history of steps requests
// of c per seed, each through a new bucket from newBucket on a
// contend.ManualClock and through the textbook bucket (textbook.Replay),
// and returns the totals: decisions, disagreements, the worst window. A
// denial within the rate's rounding tolerance (package refill) is counted
// as Tolerated, not as a WrongDenial. A seed whose bucket cannot be built,
// or grants an impossible request, is left out of the totals, and its
// error is returned (joined with the others').
func ReplayTextbook(newBucket NewBucketFunc, c textbook.Case, seeds []uint64, steps int) (textbook.Result, error) {
	total := textbook.Result{WindowExcess: math.Inf(-1)}
	var errs []error
	for _, seed := range seeds {
		run, err := replay(newBucket, c, seed, steps)
		if err != nil {
			errs = append(errs, fmt.Errorf("seed %d: %w", seed, err))
			continue
		}
		total.Decisions += run.Decisions
		total.OverGrants += run.OverGrants
		total.WrongDenials += run.WrongDenials
		total.Tolerated += run.Tolerated
		total.WindowExcess = max(total.WindowExcess, run.WindowExcess)
		total.FirstWrong = cmp.Or(total.FirstWrong, run.FirstWrong)
	}
	return total, errors.Join(errs...)
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

// Sizes of the textbook check's histories.
const textbookSteps = 300

var textbookSeeds = []uint64{1, 2, 3}

// checkTextbook replays random sequential histories of every case of
// textbook.Cases through the bucket and the textbook bucket. Exact: no
// over-grant, no denial outside the tolerance, no window over its bound.
// Approximate: windows within Capacity + Rate × W + its stated excess.
// Declared to deviate: some disagreement.
func checkTextbook(c *checker, nb NewBucketFunc, o *options) {
	why, deviates := o.deviates(TextbookDeviation)
	disagreements := 0
	for _, tc := range textbook.Cases() {
		total, err := ReplayTextbook(nb, tc, textbookSeeds, textbookSteps)
		require.NoError(c, err, "%s", tc.Name)
		switch {
		case deviates:
			disagreements += total.OverGrants + total.WrongDenials
		case o.approximate:
			excess := float64(o.burstExcessFor(contend.BucketConfig{Capacity: tc.Capacity, Rate: tc.Rate}))
			assert.LessOrEqual(c, total.WindowExcess, excess, "%s: a window over Capacity + Rate × W + %v", tc.Name, excess)
		default:
			assert.Zero(c, total.OverGrants, "%s: granted what the textbook bucket refused (%s)", tc.Name, total.FirstWrong)
			assert.Zero(c, total.WrongDenials, "%s: denied what the textbook bucket granted, beyond the tolerance (%s)", tc.Name, total.FirstWrong)
			assert.LessOrEqual(c, total.WindowExcess, 0.0, "%s: a window over Capacity + Rate × W", tc.Name)
			if tolerance(tc.Capacity, tc.Rate, 0) == 0 {
				assert.Zero(c, total.Tolerated, "%s: the interval is whole ns, so there is no tolerance", tc.Name)
			}
		}
	}
	if deviates {
		assert.Positive(c, disagreements, "declared to deviate from the textbook bucket (%s), but agrees with it: remove the declaration", why)
		c.Logf("deviates as declared (%s): %d disagreements", why, disagreements)
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

// checkStalledReader: capacity 2, one token left at 1 s. Call A reads the
// clock and stalls; meanwhile the clock reaches 2 s and call B is granted a
// token. A token was available throughout A's call, so A must be granted
// too (a bucket that decides on A's old reading against B's newer state
// refuses it: not linearizable). Then the bucket is empty.
func checkStalledReader(c *checker, nb NewBucketFunc, o *options) {
	againstTextbook(c, o)
	clk := &stallClock{inner: contend.NewManualClock(startOfTime)}
	b, err := nb(contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk})
	require.NoError(c, err)
	require.True(c, b.TryTake(2))
	clk.inner.Set(startOfTime + 1e9) // one token
	var bGranted atomic.Bool
	bDone := make(chan struct{})
	clk.mu.Lock()
	clk.stall = func() {
		clk.inner.Set(startOfTime + 2e9) // a second token
		go func() { bGranted.Store(b.TryTake(1)); close(bDone) }()
		select { // B may block on a lock A holds: then it runs after A
		case <-bDone:
		case <-time.After(50 * time.Millisecond):
		}
	}
	clk.mu.Unlock()
	assert.True(c, b.TryTake(1), "A: denied a token that was there throughout its call")
	<-bDone
	assert.True(c, bGranted.Load(), "B")
	assert.False(c, b.TryTake(1), "the bucket holds no third token at 2 s")
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

// checkLinearizableBucket checks random concurrent histories for
// linearizability against the textbook bucket with the clock in the model
// (textbook.Model), on a rate whose interval is whole nanoseconds (no
// tolerance) and on one whose is not.
func checkLinearizableBucket(c *checker, nb NewBucketFunc, o *options) {
	againstTextbook(c, o)
	cases := []struct {
		capacity int64
		rate     float64
		step     time.Duration
	}{
		{2, 1000, time.Millisecond}, // T = 1 ms
		{3, 3000, time.Millisecond}, // T = 333,333.33 ns
	}
	const histories = 30
	for _, tc := range cases {
		tol := tolerance(tc.capacity, tc.rate, int64(time.Hour))
		for seed := range uint64(histories) {
			// Readings go stale (staleClock yields before returning one),
			// as they do when a goroutine is preempted after reading.
			clk := contend.NewManualClock(startOfTime)
			b, err := nb(contend.BucketConfig{Capacity: tc.capacity, Rate: tc.rate, Clock: staleClock{clk}})
			require.NoError(c, err)
			history, readings := concurrentHistory(b, clk, tc.capacity, tc.step, seed, 4, 15)
			model := textbook.Model(tc.capacity, tc.rate, readings, tol)
			res, info := porcupine.CheckOperationsVerbose(model, history, 10*time.Second)
			if !assert.Equal(c, porcupine.Ok, res, "capacity %d rate %v seed %d", tc.capacity, tc.rate, seed) {
				if dir := c.historiesDir(); dir != "" {
					path := filepath.Join(dir, fmt.Sprintf("bucket-%d-%d.html", tc.capacity, seed))
					if porcupine.VisualizePath(model, info, path) == nil {
						c.Logf("history: %s", path)
					}
				}
				return
			}
		}
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

// StaleReadingsConfig is the configuration of StaleReadings' bucket, on its
// own clock: an emission interval of 10 µs.
var StaleReadingsConfig = contend.BucketConfig{Capacity: 50, Rate: 100_000}

// StaleReadings builds a bucket with StaleReadingsConfig on a clock whose
// readings go stale (each is returned after a yield, one in eight after a
// 30 µs sleep) while a driver advances it, and lets StressGoroutines
// goroutines each make 60 requests of 1 to 3 tokens. It returns the most
// tokens granted over any window [a, b] of readings beyond Capacity +
// Rate × (b − a), counting only grants whose whole call lies inside the
// window; an exact bucket's is at most 0. It returns an error if the
// bucket cannot be built or granted too little to test anything.
func StaleReadings(newBucket NewBucketFunc) (worstExcess float64, err error) {
	cfg := StaleReadingsConfig
	inner := contend.NewManualClock(startOfTime)
	cfg.Clock = staleClock{inner}
	b, err := newBucket(cfg)
	if err != nil {
		return 0, err
	}
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
	if granted <= cfg.Capacity {
		return 0, fmt.Errorf("granted %d tokens, no more than the capacity %d: too little to test anything", granted, cfg.Capacity)
	}
	return surelyInsideExcess(calls, cfg.Capacity, cfg.Rate), nil
}

// staleRuns is how many StaleReadings runs the stale-readings check makes
// of a bucket that keeps its bounds, and the most it makes of one declared
// to break them, until one shows it.
const (
	staleRuns          = 2
	staleDeviationRuns = 20
)

// checkStaleReadings runs StaleReadings at GOMAXPROCS 8: no window of an
// exact bucket grants more than Capacity + Rate × W, an approximate one
// stays within its stated excess, and one declared to deviate from the
// stress check (x/time/rate: golang/go#56287) shows it within
// staleDeviationRuns runs.
func checkStaleReadings(c *checker, nb NewBucketFunc, o *options) {
	why, deviates := o.deviates(StressDeviation)
	if !deviates {
		why, deviates = o.deviates("stale-readings")
	}
	WithGOMAXPROCS(8, func() {
		if deviates {
			worst, runs := math.Inf(-1), 0
			for ; runs < staleDeviationRuns && worst <= 0; runs++ {
				excess, err := StaleReadings(nb)
				require.NoError(c, err)
				worst = max(worst, excess)
			}
			if assert.Positive(c, worst, "declared to deviate (%s), but no window went over Capacity + Rate × W in %d runs", why, runs) {
				c.Logf("over-granted a window by %.1f tokens, as declared (%s)", worst, why)
			}
			return
		}
		allowed := float64(o.burstExcessFor(StaleReadingsConfig))
		for range staleRuns {
			worst, err := StaleReadings(nb)
			require.NoError(c, err)
			assert.LessOrEqual(c, worst, allowed, "a window over Capacity + Rate × W + %v", allowed)
		}
	})
}
