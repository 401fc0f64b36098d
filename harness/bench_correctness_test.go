package harness

import (
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/impls/antipattern"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/internal/raceflag"
)

// BenchmarkCorrectness does not measure speed: each iteration runs a short
// scenario and the benchmark reports, as the mean over its iterations, how
// wrong each implementation was. Run it with -benchtime=1x (one scenario per
// result line; -count gives the samples) or 3x. Whatever b.N is, it runs at
// most correctnessMaxRuns scenarios (see scenarios), so that a suite-wide
// -benchtime meant for the throughput benchmarks stays bounded here.
//
// One pass at -cpu 2 -benchtime 1x takes about 1.5 s here, most of it
// check=grant-ratio (50 ms per bucket and goroutine count).
//
//   - check=lost-updates, every counter: RunCounter with lostUpdateAdds Adds
//     per goroutine. Metrics lost-fraction (|want-got|/want) and lost-updates
//     (|want-got|). A correct counter reports 0.
//   - check=grant-ratio, every bucket: RunBucket for grantRatioRun on the
//     real clock with demand far above the rate. Metric grant-ratio =
//     granted / allowed (Capacity + Rate × elapsed): at most 1 for a correct
//     bucket (about 0.98–1 for an exact one), above 1 is an over-grant.
//   - check=wall-clock-step, impl=wallclock vs impl=atomic: see wallClockStep.
//   - check=large-clock, impl=float vs impl=atomic: see largeClock.
//   - check=lock-overlaps, every lock: RunLock for exclusionRun. Metrics
//     overlaps (critical sections entered while another was inside, per
//     run) and overlap-fraction (of acquisitions). A correct lock reports 0.
//   - check=semaphore-overflow, every semaphore of capacity
//     benchSemCapacity, one permit per holder: RunSemaphore for
//     exclusionRun. Metrics max-held (the most permits held at once over
//     the samples) and overflows per run. A correct one holds at most 4.
//
// Goroutines: GOMAXPROCS (when above 1) and 100; one goroutine cannot race.
// The racy control is skipped under -race.
func BenchmarkCorrectness(b *testing.B) {
	b.Run("check=lost-updates", func(b *testing.B) {
		for _, impl := range Counters() {
			if impl.Guarantee == Racy && raceflag.Enabled {
				continue
			}
			forCorrectnessGoroutines(b, "impl="+impl.Name, func(b *testing.B, g int) {
				var lost, fraction float64
				runs := scenarios(b, func() {
					r := contendtest.RunCounter(impl.New(), g, lostUpdateAdds)
					lost += float64(abs(r.Lost()))
					fraction += r.LostFraction()
				})
				b.ReportMetric(fraction/runs, "lost-fraction")
				b.ReportMetric(lost/runs, "lost-updates")
			})
		}
	})
	b.Run("check=grant-ratio", func(b *testing.B) {
		for _, impl := range Buckets() {
			if impl.Guarantee == Racy && raceflag.Enabled {
				continue
			}
			forCorrectnessGoroutines(b, "impl="+impl.Name, func(b *testing.B, g int) {
				var ratio float64
				runs := scenarios(b, func() {
					r, err := contendtest.RunBucket(impl.New, grantRatioConfig, g, grantRatioRun)
					if err != nil {
						b.Fatalf("%s: %v", impl.Name, err)
					}
					ratio += r.GrantRatio()
				})
				b.ReportMetric(ratio/runs, "grant-ratio")
			})
		}
	})
	b.Run("check=wall-clock-step", func(b *testing.B) {
		steppedCheck(b, wallClockStep, []namedStepped{
			{"wallclock", func(cfg contend.BucketConfig, wall func() int64) (contend.Bucket, error) {
				return antipattern.NewWallClockBucketWith(cfg, wall)
			}},
			{"atomic", monotonicAtomic},
		})
	})
	b.Run("check=large-clock", func(b *testing.B) {
		steppedCheck(b, largeClock, []namedStepped{
			{"float", func(cfg contend.BucketConfig, _ func() int64) (contend.Bucket, error) {
				return antipattern.NewFloatBucket(cfg)
			}},
			{"atomic", monotonicAtomic},
		})
	})
	b.Run("check=lock-overlaps", func(b *testing.B) {
		for _, impl := range Locks() {
			if impl.Guarantee == Racy && raceflag.Enabled {
				continue
			}
			forCorrectnessGoroutines(b, "impl="+impl.Name, func(b *testing.B, g int) {
				var overlaps, acquisitions float64
				runs := scenarios(b, func() {
					r, err := contendtest.RunLock(impl.New(), g, exclusionRun, contendtest.WorkRounds)
					if err != nil {
						b.Fatal(err)
					}
					overlaps += float64(r.Overlaps)
					acquisitions += float64(r.Acquisitions)
				})
				b.ReportMetric(overlaps/runs, "overlaps")
				if acquisitions > 0 {
					b.ReportMetric(overlaps/acquisitions, "overlap-fraction")
				}
			})
		}
	})
	b.Run("check=semaphore-overflow", func(b *testing.B) {
		for _, impl := range Semaphores() {
			if impl.Guarantee == Racy && raceflag.Enabled {
				continue
			}
			forCorrectnessGoroutines(b, "impl="+impl.Name, func(b *testing.B, g int) {
				var maxHeld, overflows float64
				runs := scenarios(b, func() {
					s, err := impl.New(benchSemCapacity)
					if err != nil {
						b.Fatal(err)
					}
					r, err := contendtest.RunSemaphore(s, g, exclusionRun, func(int) int64 { return 1 })
					if err != nil {
						b.Fatal(err)
					}
					maxHeld = max(maxHeld, float64(r.MaxHeld))
					overflows += float64(r.Overflows)
				})
				b.ReportMetric(maxHeld, "max-held")
				b.ReportMetric(overflows/runs, "overflows")
			})
		}
	})
}

// exclusionRun is how long each check=lock-overlaps and
// check=semaphore-overflow iteration runs RunLock or RunSemaphore.
const exclusionRun = 20 * time.Millisecond

const (
	// lostUpdateAdds is the Adds per goroutine of check=lost-updates: enough
	// for two goroutines to overlap often (the racy control then loses
	// updates in most runs); 500,000 Adds at 100 goroutines take 50–70 ms
	// with a mutex here.
	lostUpdateAdds = 5000
	// grantRatioRun is how long each check=grant-ratio iteration runs.
	grantRatioRun = 50 * time.Millisecond
)

// grantRatioConfig is check=grant-ratio's bucket: 100 tokens of burst and
// 10,000 tokens/s, so a 50 ms run allows about 600 tokens while the
// goroutines ask for millions.
var grantRatioConfig = contend.BucketConfig{Capacity: 100, Rate: 1e4}

// forCorrectnessGoroutines runs f as sub-benchmark name/goroutines=<g> for
// each goroutine count of the correctness checks.
func forCorrectnessGoroutines(b *testing.B, name string, f func(b *testing.B, g int)) {
	b.Run(name, func(b *testing.B) {
		for _, g := range []int{onePerP, 100} {
			// At -benchtime 1x the first sample of the first -cpu value is
			// the probe run that b.Run makes: set its GOMAXPROCS first.
			runFirstCPU(b, goroutinesName(g), func(b *testing.B) { f(b, resolveGoroutines(g)) })
		}
	})
}

// correctnessMaxRuns caps the scenarios a BenchmarkCorrectness result runs.
const correctnessMaxRuns = 10

// scenarios runs run min(b.N, correctnessMaxRuns) times and returns that
// count, for the caller to average its metrics over. It reports ns/op, B/op
// and allocs/op per scenario run (overriding the framework's, which divide
// by b.N); they describe the scenario, not an implementation's speed.
func scenarios(b *testing.B, run func()) float64 {
	runs := min(b.N, correctnessMaxRuns)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range runs {
		run()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(runs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/op")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/op")
	return n
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// A stepped scenario drives a bucket on a ManualClock that moves only
// between phases, so its outcome does not depend on scheduling: in each
// phase every goroutine makes its share of attemptsPerPhase requests for one
// token, then the clock advances by step. A second, "wall" reading, which
// only the wall-clock anti-pattern reads, follows the same clock plus jump
// from phase jumpAt on (a wall-clock step, as NTP or an administrator makes).
type stepped struct {
	cfg              contend.BucketConfig // Clock is set per run
	start            int64                // the clock's first reading
	step             time.Duration        // clock advance between phases
	phases           int                  // phase 0 at start, then phases-1 steps
	jumpAt           int                  // phase from which wall = clock + jump; 0: never
	jump             time.Duration
	attemptsPerPhase int // split among the goroutines, rounded up
}

// steppedBucket builds the bucket under test from cfg (whose Clock is the
// monotonic ManualClock) and the wall reading.
type steppedBucket func(cfg contend.BucketConfig, wall func() int64) (contend.Bucket, error)

type namedStepped struct {
	name string
	new  steppedBucket
}

// monotonicAtomic is the control of both stepped checks: the lab's atomic
// bucket on the monotonic clock, which ignores the wall reading.
func monotonicAtomic(cfg contend.BucketConfig, _ func() int64) (contend.Bucket, error) {
	return cas.NewBucket(cfg)
}

var (
	// wallClockStep: Capacity 100 at 1000 tokens/s, 50 phases 1 ms apart, so
	// a correct bucket grants 100 + 1000 × 0.049 s = 149 tokens. At phase 25
	// the wall clock jumps 1 hour forward while the monotonic clock does not:
	// a bucket that refills from the wall clock finds itself full again and
	// grants up to Capacity more, a grant-ratio up to (149+100)/149 ≈ 1.67.
	// The clock starts at 1 s so that no float rounding enters.
	wallClockStep = stepped{
		cfg:   contend.BucketConfig{Capacity: 100, Rate: 1000},
		start: 1e9, step: time.Millisecond, phases: 50,
		jumpAt: 25, jump: time.Hour,
		attemptsPerPhase: 400,
	}
	// largeClock: Capacity 256 at 1e9 tokens/s (one per ns), the clock
	// starting at 1.7e18 ns + 127 (a Unix time in nanoseconds, in 2023), where
	// one float64 ulp is 256 ns: the reading rounds down by 127 ns. Phase 0
	// drains the burst; then 16 steps of 2 ns take the clock to 1.7e18 + 159,
	// which rounds up to 1.7e18 + 256. A correct bucket grants 256 + 32 = 288
	// tokens; one that subtracts float64 nanosecond readings sees 256 ns pass
	// and grants 256 more, a grant-ratio of 512/288 ≈ 1.78.
	largeClock = stepped{
		cfg:   contend.BucketConfig{Capacity: 256, Rate: 1e9},
		start: 1_700_000_000_000_000_127, step: 2, phases: 17,
		attemptsPerPhase: 1024,
	}
)

// allowed returns Capacity + floor(Rate × elapsed) for the run's monotonic
// elapsed time, (phases-1) × step, computed exactly from the float64 rate.
func (s stepped) allowed() int64 {
	earned := new(big.Rat).SetFloat64(s.cfg.Rate)
	earned.Mul(earned, big.NewRat(int64(s.phases-1)*int64(s.step), int64(time.Second)))
	q := new(big.Int).Quo(earned.Num(), earned.Denom())
	return s.cfg.Capacity + q.Int64()
}

// run runs the scenario once on g goroutines and returns the tokens granted.
func (s stepped) run(newBucket steppedBucket, g int) (int64, error) {
	clk := contend.NewManualClock(s.start)
	var offset atomic.Int64
	wall := func() int64 { return clk.Now() + offset.Load() }
	cfg := s.cfg
	cfg.Clock = clk
	bucket, err := newBucket(cfg, wall)
	if err != nil {
		return 0, err
	}
	per := (s.attemptsPerPhase + g - 1) / g
	var granted atomic.Int64
	var wg sync.WaitGroup
	for phase := range s.phases {
		if phase > 0 {
			clk.Advance(s.step)
		}
		if s.jumpAt > 0 && phase == s.jumpAt {
			offset.Store(int64(s.jump))
		}
		wg.Add(g)
		for range g {
			go func() {
				defer wg.Done()
				granted.Add(takeOnes(bucket, per))
			}()
		}
		wg.Wait()
	}
	return granted.Load(), nil
}

// steppedCheck runs scenario s for each implementation in impls and reports
// grant-ratio = granted / allowed, the mean over b.N runs.
func steppedCheck(b *testing.B, s stepped, impls []namedStepped) {
	for _, impl := range impls {
		name, newBucket := impl.name, impl.new
		forCorrectnessGoroutines(b, "impl="+name, func(b *testing.B, g int) {
			var ratio float64
			runs := scenarios(b, func() {
				granted, err := s.run(newBucket, g)
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				ratio += float64(granted) / float64(s.allowed())
			})
			b.ReportMetric(ratio/runs, "grant-ratio")
		})
	}
}
