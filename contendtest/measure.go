package contendtest

import (
	"errors"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
)

// counterDeltas is the sequence every RunCounter goroutine adds, over and
// over. It mixes signs, so that a counter that drops the sign or loses a
// negative update is caught as surely as one that loses a positive one, and
// sums to a small non-zero value, so that a counter stuck at zero is caught.
var counterDeltas = [...]int64{7, -3, 1, -5, 2, 1, -1, 3} // sums to 5

// CounterRun is the outcome of RunCounter.
type CounterRun struct {
	Goroutines int
	Want       int64 // the exact sum of every delta added
	Got        int64 // what Load returned once every Add had returned
}

// Lost returns the updates the counter lost: Want - Got. A correct counter
// loses none; the racy control loses some under concurrency.
func (r CounterRun) Lost() int64 { return r.Want - r.Got }

// LostFraction returns |Lost| as a fraction of the number of Adds' absolute
// sum, a scale-free measure of how wrong the counter was.
func (r CounterRun) LostFraction() float64 {
	if r.Want == 0 {
		return 0
	}
	l := float64(r.Lost()) / float64(r.Want)
	if l < 0 {
		return -l
	}
	return l
}

// RunCounter starts goroutines that each Add the fixed mixed-sign sequence
// counterDeltas, addsPerGoroutine Adds in all, released at once by a start
// barrier; it waits for all of them and returns the expected and loaded sums.
func RunCounter(c contend.Counter, goroutines, addsPerGoroutine int) CounterRun {
	var perGoroutine int64
	for i := 0; i < addsPerGoroutine; i++ {
		perGoroutine += counterDeltas[i%len(counterDeltas)]
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(goroutines)
	for range goroutines {
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < addsPerGoroutine; i++ {
				c.Add(counterDeltas[i%len(counterDeltas)])
			}
		}()
	}
	close(start)
	wg.Wait()
	return CounterRun{Goroutines: goroutines, Want: perGoroutine * int64(goroutines), Got: c.Load()}
}

// bucketRequestSizes are the request sizes RunBucket's goroutines cycle
// through: mixed sizes exercise the all-or-nothing path, where a request for
// 3 is denied while a request for 1 would be granted.
var bucketRequestSizes = [...]int64{1, 2, 3, 1, 1, 2}

// yieldEvery is how many attempts a RunBucket goroutine makes between calls
// to runtime.Gosched; see RunBucket.
const yieldEvery = 32

// BucketRun is the outcome of RunBucket. Times are on the bucket's clock.
type BucketRun struct {
	Goroutines int
	Attempts   int64 // TryTake calls
	Requests   int64 // tokens requested, over all attempts
	Granted    int64 // tokens granted

	// Allowed is Capacity + floor(Rate × Elapsed): the most a correct
	// bucket may grant in the run. Elapsed runs from a clock reading taken
	// just before the bucket was built to the latest reading a goroutine
	// took just after its last TryTake returned, so a correct bucket can
	// never exceed Allowed, and a bucket one token over it is caught.
	Allowed int64
	// Supply is Capacity + floor(Rate × Busy): the least an exact bucket
	// grants (less a few tokens) when demand exceeds supply. Busy is the
	// time from the start to the latest attempt's clock reading, less every
	// stretch of at least IdleThreshold in which no goroutine attempted
	// (the process was descheduled, or the goroutines had not started): in
	// such a stretch a bucket may fill up and forfeit tokens through no
	// fault of its own, and tokens earned there may be left untaken at the
	// end. Subtracting only those stretches keeps the lower bound fair on
	// a noisy machine without making it vacuous.
	Supply int64

	Elapsed       time.Duration // construction to the last return
	Busy          time.Duration // see Supply
	Idle          time.Duration // the stretches subtracted from Busy
	IdleThreshold time.Duration
}

// OverGrant returns the tokens granted beyond Allowed, or 0.
func (r BucketRun) OverGrant() int64 { return max(0, r.Granted-r.Allowed) }

// GrantRatio returns Granted / Allowed: above 1 means the bucket over-granted.
func (r BucketRun) GrantRatio() float64 {
	if r.Allowed <= 0 {
		return 0
	}
	return float64(r.Granted) / float64(r.Allowed)
}

// DemandExceededSupply reports whether the run denied requests, that is
// whether the goroutines asked for more than the bucket had. Only then is
// Supply a lower bound on Granted.
func (r BucketRun) DemandExceededSupply() bool { return r.Requests > r.Granted }

// interval is [from, to) on the bucket's clock.
type interval struct{ from, to int64 }

// RunBucket builds a bucket from cfg with newBucket and lets goroutines call
// TryTake, cycling through bucketRequestSizes, for the real duration d,
// released at once by a start barrier. Each attempt reads cfg's clock just
// before TryTake, to find the run's idle stretches (see BucketRun.Supply).
// With a ManualClock that nobody advances, Elapsed is 0 and Allowed is the
// capacity.
//
// Every yieldEvery attempts a goroutine calls runtime.Gosched. Without it, a
// goroutine that never blocks (a lock-free bucket never parks it) keeps its
// P for a whole 10 ms scheduler time slice, and in a 100 ms run at
// GOMAXPROCS 2 only about 20 of 100 goroutines would ever call TryTake.
func RunBucket(newBucket NewBucketFunc, cfg contend.BucketConfig, goroutines int, d time.Duration) (BucketRun, error) {
	if goroutines < 1 {
		return BucketRun{}, errors.New("contendtest: RunBucket needs at least one goroutine")
	}
	if err := cfg.Validate(); err != nil {
		return BucketRun{}, err
	}
	clk := cfg.ClockOrDefault()
	// A goroutine that goes this long between attempts is idle: shorter than
	// 1% of the run, so tokens left untaken after a shorter pause stay well
	// inside the 2% margin the stress test allows.
	threshold := int64(d / 200)
	if threshold < 1 {
		threshold = 1
	}

	type result struct {
		attempts, requests, granted int64
		idle                        []interval
		end                         int64
	}
	results := make([]result, goroutines)
	var stop atomic.Bool
	ready := make(chan struct{})
	var wg sync.WaitGroup

	t0 := clk.Now()
	b, err := newBucket(cfg)
	if err != nil {
		return BucketRun{}, err
	}
	wg.Add(goroutines)
	for g := range goroutines {
		go func() {
			defer wg.Done()
			r := &results[g]
			<-ready
			last := t0
			for i := g; !stop.Load(); i++ {
				now := clk.Now()
				if now-last >= threshold {
					r.idle = append(r.idle, interval{last, now})
				}
				last = now
				if i%yieldEvery == 0 {
					runtime.Gosched()
				}
				n := bucketRequestSizes[i%len(bucketRequestSizes)]
				r.attempts++
				r.requests += n
				if b.TryTake(n) {
					r.granted += n
				}
			}
			// From its last attempt on, this goroutine asked for nothing.
			r.idle = append(r.idle, interval{last, maxInt64})
			r.end = clk.Now() // after its last TryTake returned
		}()
	}
	close(ready)
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	t1 := t0 // the latest reading taken after a TryTake returned
	for i := range results {
		t1 = max(t1, results[i].end)
	}

	run := BucketRun{Goroutines: goroutines, IdleThreshold: time.Duration(threshold)}
	latest := t0 // the latest attempt's clock reading
	for i := range results {
		r := &results[i]
		run.Attempts += r.attempts
		run.Requests += r.requests
		run.Granted += r.granted
		if r.attempts > 0 {
			latest = max(latest, r.idle[len(r.idle)-1].from)
		}
	}
	idle := results[0].idle
	for i := 1; i < len(results); i++ {
		idle = intersect(idle, results[i].idle)
	}
	var idleNs int64
	for _, iv := range idle {
		from, to := max(iv.from, t0), min(iv.to, latest)
		if to > from {
			idleNs += to - from
		}
	}
	run.Elapsed = time.Duration(max(0, t1-t0))
	run.Busy = time.Duration(max(0, latest-t0-idleNs))
	run.Idle = time.Duration(idleNs)
	run.Allowed = tokensIn(cfg, run.Elapsed)
	run.Supply = tokensIn(cfg, run.Busy)
	return run, nil
}

const maxInt64 = int64(^uint64(0) >> 1)

// intersect returns the intervals in both a and b. Both are sorted and
// disjoint, as each goroutine records them.
func intersect(a, b []interval) []interval {
	var out []interval
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		from, to := max(a[i].from, b[j].from), min(a[i].to, b[j].to)
		if from < to {
			out = append(out, interval{from, to})
		}
		if a[i].to < b[j].to {
			i++
		} else {
			j++
		}
	}
	return out
}

// tokensIn returns Capacity + floor(Rate × d), computed exactly from the
// float64 rate, saturating at MaxInt64.
func tokensIn(cfg contend.BucketConfig, d time.Duration) int64 {
	r := new(big.Rat).SetFloat64(cfg.Rate)
	r.Mul(r, big.NewRat(int64(d), int64(time.Second)))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	q.Add(q, big.NewInt(cfg.Capacity))
	if !q.IsInt64() {
		return maxInt64
	}
	return q.Int64()
}
