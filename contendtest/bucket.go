package contendtest

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/contend-lab/contend"
)

// NewBucketFunc builds a bucket from a configuration, or returns a
// *contend.ConfigError for a configuration it refuses.
type NewBucketFunc func(contend.BucketConfig) (contend.Bucket, error)

// Bucket runs every check of [BucketChecks] on buckets newBucket builds,
// each as a subtest of t, held to what opts declare: exact (the textbook
// token bucket's decisions, in the order they take effect) unless
// [Approximate]. A bucket built with a nil Clock must use
// contend.DefaultClock. The stress checks set GOMAXPROCS: do not call
// Bucket from parallel tests.
func Bucket(t *testing.T, newBucket NewBucketFunc, opts ...Option) {
	t.Helper()
	if newBucket == nil {
		t.Fatal("contendtest.Bucket: newBucket is nil")
	}
	runAll(t, bucketFamily, BucketChecks(), newBucket, opts)
}

// BucketChecks returns the bucket checks, in a stable order: first the
// sequential ones, deterministic on a contend.ManualClock (or, for
// synctest-bubble, the default clock in a testing/synctest bubble), then
// the checks against the textbook bucket, then the concurrent ones.
func BucketChecks() []Check[NewBucketFunc] {
	plain := func(name, doc string, check func(NewBucketFunc) error) Check[NewBucketFunc] {
		return Check[NewBucketFunc]{name: name, doc: doc, family: bucketFamily, run: fromError(check)}
	}
	return []Check[NewBucketFunc]{
		plain("starts-full", "a new bucket grants Capacity tokens at once, and no more", checkStartsFull),
		plain("all-or-nothing", "a request larger than what the bucket holds takes nothing", checkAllOrNothing),
		plain("refill-at-boundaries", "the k-th token after draining appears at ceil(k×1e9/Rate) ns, never earlier", checkRefillAtBoundaries),
		plain("capped-at-capacity", "a long idle bucket holds Capacity tokens, not more", checkCappedAtCapacity),
		plain("impossible-requests", "n <= 0 and n > Capacity are refused and change nothing", checkImpossibleRequests),
		plain("decades-idle", "50 and 290 years of idle time refill to Capacity without overflow, and refill goes on", checkDecadesIdle),
		plain("clock-standing-still", "a drained bucket on a clock that does not move grants nothing", checkClockStandingStill),
		plain("clock-backwards", "a clock reading before an earlier one adds no tokens", checkClockBackwards),
		plain("rate-edges", "MinRate and MaxRate work exactly; the next float64 beyond each is rejected", checkRateEdges),
		plain("bad-config", "invalid Capacity or Rate is a *contend.ConfigError naming field and value, never a panic", checkBadConfig),
		{name: "synctest-bubble", doc: "on the default clock inside a synctest bubble, a 1 s sleep refills Rate × 1 s",
			family: bucketFamily, run: checkSynctestBubble},
		{name: "refill-after-take", doc: "exact: at 1 token/s, a token taken at 1.5 s is due again at 2.5 s, not on a grid fixed at construction",
			family: bucketFamily, run: checkRefillAfterTake},
		{name: TextbookDeviation, doc: "random sequential histories make the textbook bucket's decisions (approximate: windows within the stated excess)",
			family: bucketFamily, run: checkTextbook, ownDeviation: true},
		{name: "stalled-reader", doc: "exact: a call whose clock reading went stale while another was granted is still granted a token there throughout",
			family: bucketFamily, run: checkStalledReader},
		{name: "linearizable", doc: "exact: concurrent histories on stale clock readings are linearizable against the textbook bucket (porcupine)",
			family: bucketFamily, run: checkLinearizableBucket},
		{name: StressDeviation, doc: "100 goroutines at GOMAXPROCS 1, 2 and 8 never get more than Capacity + Rate × elapsed, and at least 98% of the supply",
			family: bucketFamily, run: checkStressBucket, ownDeviation: true},
		{name: "stale-readings", doc: "100 goroutines on a clock whose readings go stale: no window over Capacity + Rate × W (approximate: + the stated excess)",
			family: bucketFamily, run: checkStaleReadings, ownDeviation: true},
	}
}

// StressDeviation and TextbookDeviation name the bucket checks whose
// declared deviations mean more than an expected failure (see [Deviates]).
const (
	StressDeviation   = "stress"
	TextbookDeviation = "textbook"
)

// manual builds a bucket on a new ManualClock starting at start.
func manual(nb NewBucketFunc, capacity int64, rate float64, start int64) (contend.Bucket, *contend.ManualClock, error) {
	clk := contend.NewManualClock(start)
	b, err := nb(contend.BucketConfig{Capacity: capacity, Rate: rate, Clock: clk})
	if err != nil {
		return nil, nil, fmt.Errorf("New(Capacity=%d, Rate=%v): %w", capacity, rate, err)
	}
	if b == nil {
		return nil, nil, fmt.Errorf("New(Capacity=%d, Rate=%v) returned a nil bucket and no error", capacity, rate)
	}
	return b, clk, nil
}

// expect checks a sequence of TryTake calls at the clock's current time.
type take struct {
	n    int64
	want bool
}

func takes(b contend.Bucket, clk *contend.ManualClock, what string, seq ...take) error {
	for i, s := range seq {
		if got := b.TryTake(s.n); got != s.want {
			return fmt.Errorf("%s: call %d, TryTake(%d) at t=%d returned %v, want %v", what, i+1, s.n, clk.Now(), got, s.want)
		}
	}
	return nil
}

const startOfTime = 1_000_000_007 // ManualClock start: neither 0 nor a round number

func checkStartsFull(nb NewBucketFunc) error {
	for _, c := range []int64{1, 2, 10, 1000} {
		b, clk, err := manual(nb, c, 1, startOfTime)
		if err != nil {
			return err
		}
		for i := int64(0); i < c; i++ {
			if !b.TryTake(1) {
				return fmt.Errorf("Capacity %d: token %d of a new bucket denied", c, i+1)
			}
		}
		if err := takes(b, clk, fmt.Sprintf("Capacity %d after taking all", c), take{1, false}); err != nil {
			return err
		}
		// All at once, on a second bucket.
		b, clk, err = manual(nb, c, 1, startOfTime)
		if err != nil {
			return err
		}
		if err := takes(b, clk, fmt.Sprintf("Capacity %d", c), take{c, true}, take{1, false}); err != nil {
			return err
		}
	}
	return nil
}

func checkAllOrNothing(nb NewBucketFunc) error {
	b, clk, err := manual(nb, 10, 1, startOfTime)
	if err != nil {
		return err
	}
	return takes(b, clk, "Capacity 10", take{7, true}, take{5, false}, take{4, false}, take{3, true}, take{1, false})
}

// exactTokenTime returns ceil(k × 1e9 / rate), computed exactly from the
// float64 rate, and whether 1e9/rate is a dyadic rational (a finite binary
// fraction), in which case a fixed-point schedule can represent it exactly.
func exactTokenTime(k uint64, rate float64) (ns int64, dyadic bool) {
	interval := new(big.Rat).SetFloat64(rate)
	interval.Quo(big.NewRat(1e9, 1), interval)
	d := new(big.Int).Set(interval.Denom())
	dyadic = d.And(d, new(big.Int).Sub(interval.Denom(), big.NewInt(1))).Sign() == 0 // power of two
	t := new(big.Rat).Mul(interval, new(big.Rat).SetInt(new(big.Int).SetUint64(k)))
	q, r := new(big.Int).QuoRem(t.Num(), t.Denom(), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64, dyadic
	}
	return q.Int64(), dyadic
}

// maxCapacityAt returns the largest capacity that refills within MaxBurst at
// rate: floor(2^62 ns × rate / 1e9), at most MaxCapacity.
func maxCapacityAt(rate float64) int64 {
	c := new(big.Rat).SetFloat64(rate)
	c.Mul(c, big.NewRat(contend.MaxBurst, 1e9))
	q := new(big.Int).Quo(c.Num(), c.Denom())
	if !q.IsInt64() || q.Int64() > contend.MaxCapacity {
		return contend.MaxCapacity
	}
	return q.Int64()
}

// checkRefillAtBoundaries drains a large bucket and asks for k tokens at
// once just before and exactly at the time the k-th token is due.
//
// The due time is ceil(k×1e9/Rate) ns with Rate the exact value of the
// float64. A fixed-point schedule rounds the emission interval up (it must
// never grant early), so when 1e9/Rate is not a finite binary fraction (3/s,
// 1e6/3 /s) the token may be due up to 1 ns later, and never more for times
// below 2^62 ns; for rates like 10/s, 0.5/s and 1e9/s there is no slack.
func checkRefillAtBoundaries(nb NewBucketFunc) error {
	rates := []float64{10, 3, 7.5, 1, 0.5, 1e9, 1e6 / 3, 1e9 / 7, 1234.5678}
	ks := []uint64{1, 2, 3, 7, 10, 999, 1_000_003, 1<<33 + 1}
	for _, rate := range rates {
		// A large bucket, drained at once: 2^40 tokens, or as many as refill
		// in MaxBurst (2^62 ns) at this rate.
		capacity := min(int64(1)<<40, maxCapacityAt(rate))
		for _, k := range ks {
			due, dyadic := exactTokenTime(k, rate)
			if due > 1<<62 || int64(k) > capacity {
				continue
			}
			slack := int64(0)
			if !dyadic {
				slack = 1
			}
			b, clk, err := manual(nb, capacity, rate, startOfTime)
			if err != nil {
				return err
			}
			what := fmt.Sprintf("Rate %v, token %d due at %d ns", rate, k, due)
			if err := takes(b, clk, what+", draining", take{capacity, true}); err != nil {
				return err
			}
			clk.Set(startOfTime + due - 1)
			if err := takes(b, clk, what+", 1 ns early", take{int64(k), false}); err != nil {
				return err
			}
			clk.Set(startOfTime + due + slack)
			if err := takes(b, clk, what, take{int64(k), true}, take{1, false}); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkCappedAtCapacity(nb NewBucketFunc) error {
	b, clk, err := manual(nb, 5, 10, startOfTime)
	if err != nil {
		return err
	}
	if err := takes(b, clk, "Capacity 5 new", take{5, true}); err != nil {
		return err
	}
	clk.Advance(10 * time.Second) // 100 tokens earned, 5 kept
	if err := takes(b, clk, "Capacity 5 after 10 s idle at 10/s", take{6, false}, take{5, true}, take{1, false}); err != nil {
		return err
	}
	clk.Advance(100 * time.Millisecond) // exactly one more
	return takes(b, clk, "100 ms later", take{2, false}, take{1, true}, take{1, false})
}

func checkImpossibleRequests(nb NewBucketFunc) error {
	b, clk, err := manual(nb, 10, 1, startOfTime)
	if err != nil {
		return err
	}
	for _, n := range []int64{0, -1, 11, math.MinInt64, math.MaxInt64} {
		if err := takes(b, clk, "Capacity 10", take{n, false}); err != nil {
			return err
		}
	}
	return takes(b, clk, "Capacity 10 after refused requests", take{10, true}, take{1, false})
}

const year = 365 * 24 * time.Hour

func checkDecadesIdle(nb NewBucketFunc) error {
	cases := []struct {
		capacity int64
		rate     float64
		start    int64
	}{
		{5, 10, startOfTime},
		{5, 10, 1_700_000_000_000_000_000}, // a wall-clock-like reading
		{1000, 1e6 / 3, startOfTime},
		{1, 1e-6, startOfTime}, // one token per 11.6 days
		{contend.MaxCapacity, contend.MaxRate, startOfTime},
	}
	for _, c := range cases {
		for _, idle := range []time.Duration{50 * year, 290 * year} {
			if c.start > math.MaxInt64-int64(idle) {
				continue // the manual clock itself would saturate
			}
			if full, _ := exactTokenTime(uint64(c.capacity), c.rate); full > int64(idle) {
				continue // not refilled yet: MaxCapacity at MaxRate takes 146 years
			}
			b, clk, err := manual(nb, c.capacity, c.rate, c.start)
			if err != nil {
				return err
			}
			what := fmt.Sprintf("Capacity %d, Rate %v, after %v idle", c.capacity, c.rate, idle)
			if err := takes(b, clk, what+" (new)", take{c.capacity, true}); err != nil {
				return err
			}
			clk.Advance(idle)
			if err := takes(b, clk, what, take{c.capacity, true}, take{1, false}); err != nil {
				return err
			}
			// Refill goes on: the next token is due within one interval.
			next, _ := exactTokenTime(1, c.rate)
			if int64(idle)+next+1 > math.MaxInt64-c.start || next > int64(time.Hour) {
				continue // beyond the representable range, or too slow to matter
			}
			clk.Advance(time.Duration(next + 1))
			if err := takes(b, clk, what+", then one interval more", take{1, true}); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkClockStandingStill(nb NewBucketFunc) error {
	b, clk, err := manual(nb, 3, 1000, startOfTime)
	if err != nil {
		return err
	}
	if err := takes(b, clk, "Capacity 3", take{3, true}); err != nil {
		return err
	}
	for i := 0; i < 10_000; i++ {
		if b.TryTake(1) {
			return fmt.Errorf("drained bucket granted a token on attempt %d with the clock standing still", i+1)
		}
	}
	clk.Advance(time.Millisecond)
	return takes(b, clk, "1 ms later at 1000/s", take{1, true}, take{1, false})
}

// backwardsClock is a Clock whose reading a test sets freely, including
// backwards, which ManualClock refuses to do.
type backwardsClock struct{ t int64 }

func (c *backwardsClock) Now() int64 { return c.t }

func checkClockBackwards(nb NewBucketFunc) error {
	clk := &backwardsClock{t: startOfTime}
	b, err := nb(contend.BucketConfig{Capacity: 10, Rate: 10, Clock: clk})
	if err != nil {
		return err
	}
	if !b.TryTake(10) {
		return errors.New("new bucket denied its capacity")
	}
	clk.t += int64(500 * time.Millisecond) // 5 tokens
	if !b.TryTake(3) {
		return errors.New("denied 3 of 5 earned tokens")
	}
	for _, back := range []int64{startOfTime, 0, math.MinInt64, startOfTime + int64(200*time.Millisecond)} {
		clk.t = back
		if b.TryTake(1) {
			return fmt.Errorf("granted a token with the clock moved back to %d (earlier reading %d)", back, startOfTime+int64(500*time.Millisecond))
		}
	}
	clk.t = startOfTime + int64(500*time.Millisecond)
	if !b.TryTake(2) || b.TryTake(1) {
		return errors.New("after the clock came back, the 2 remaining tokens were not exactly what was left")
	}
	return nil
}

func checkRateEdges(nb NewBucketFunc) error {
	// MaxRate: one token per nanosecond.
	b, clk, err := manual(nb, 1000, contend.MaxRate, startOfTime)
	if err != nil {
		return err
	}
	if err := takes(b, clk, "MaxRate", take{1000, true}, take{1, false}); err != nil {
		return err
	}
	clk.Advance(1)
	if err := takes(b, clk, "MaxRate after 1 ns", take{1, true}, take{1, false}); err != nil {
		return err
	}
	clk.Advance(999)
	if err := takes(b, clk, "MaxRate after 999 ns more", take{999, true}, take{1, false}); err != nil {
		return err
	}
	// MinRate: one token per 2^62 ns.
	b, clk, err = manual(nb, 1, contend.MinRate, startOfTime)
	if err != nil {
		return err
	}
	if err := takes(b, clk, "MinRate", take{1, true}); err != nil {
		return err
	}
	clk.Advance(1<<62 - 1)
	if err := takes(b, clk, "MinRate 1 ns before 2^62 ns", take{1, false}); err != nil {
		return err
	}
	clk.Advance(1)
	if err := takes(b, clk, "MinRate at 2^62 ns", take{1, true}); err != nil {
		return err
	}
	// Just beyond each edge.
	for _, rate := range []float64{math.Nextafter(contend.MaxRate, math.Inf(1)), math.Nextafter(contend.MinRate, 0)} {
		if err := expectConfigError(nb, contend.BucketConfig{Capacity: 1, Rate: rate}, "Rate", rate); err != nil {
			return err
		}
	}
	return nil
}

func checkBadConfig(nb NewBucketFunc) error {
	cases := []struct {
		cfg   contend.BucketConfig
		field string
		value any
	}{
		{contend.BucketConfig{Capacity: 0, Rate: 1}, "Capacity", int64(0)},
		{contend.BucketConfig{Capacity: -1, Rate: 1}, "Capacity", int64(-1)},
		{contend.BucketConfig{Capacity: math.MinInt64, Rate: 1}, "Capacity", int64(math.MinInt64)},
		{contend.BucketConfig{Capacity: contend.MaxCapacity + 1, Rate: 1}, "Capacity", int64(contend.MaxCapacity + 1)},
		{contend.BucketConfig{Capacity: 1, Rate: 0}, "Rate", 0.0},
		{contend.BucketConfig{Capacity: 1, Rate: math.Copysign(0, -1)}, "Rate", math.Copysign(0, -1)},
		{contend.BucketConfig{Capacity: 1, Rate: -1}, "Rate", -1.0},
		{contend.BucketConfig{Capacity: 1, Rate: math.NaN()}, "Rate", math.NaN()},
		{contend.BucketConfig{Capacity: 1, Rate: math.Inf(1)}, "Rate", math.Inf(1)},
		{contend.BucketConfig{Capacity: 1, Rate: math.Inf(-1)}, "Rate", math.Inf(-1)},
	}
	for _, c := range cases {
		if err := expectConfigError(nb, c.cfg, c.field, c.value); err != nil {
			return err
		}
	}
	return nil
}

// expectConfigError builds a bucket from a bad cfg and checks the error.
func expectConfigError(nb NewBucketFunc, cfg contend.BucketConfig, field string, value any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("New(Capacity=%d, Rate=%v) panicked: %v", cfg.Capacity, cfg.Rate, p)
		}
	}()
	b, err := nb(cfg)
	what := fmt.Sprintf("New(Capacity=%d, Rate=%v)", cfg.Capacity, cfg.Rate)
	if err == nil {
		return fmt.Errorf("%s: no error", what)
	}
	if b != nil {
		return fmt.Errorf("%s: a non-nil bucket with the error %v", what, err)
	}
	var ce *contend.ConfigError
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s: error %v (%T) is not a *contend.ConfigError", what, err, err)
	}
	if ce.Field != field || fmt.Sprint(ce.Value) != fmt.Sprint(value) {
		return fmt.Errorf("%s: error names %s=%v, want %s=%v", what, ce.Field, ce.Value, field, value)
	}
	msg := err.Error()
	if !strings.Contains(msg, field) || !strings.Contains(msg, fmt.Sprint(value)) {
		return fmt.Errorf("%s: message %q does not name the field %s and the value %v", what, msg, field, value)
	}
	return nil
}

// checkSynctestBubble runs a bucket on the default clock inside a
// testing/synctest bubble, where time is fake and moves only when every
// goroutine in the bubble is blocked: a one-second sleep must refill exactly
// Rate × 1 s tokens. This is how a user tests code built on the lab's
// buckets without real sleeping.
func checkSynctestBubble(c *checker, nb NewBucketFunc, _ *options) {
	if c.t == nil {
		c.skip("the synctest bubble needs a *testing.T")
	}
	var err error
	synctest.Test(c.t, func(*testing.T) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("inside a bubble: panic: %v", p)
			}
		}()
		err = func() error {
			b, err := nb(contend.BucketConfig{Capacity: 100, Rate: 10})
			if err != nil {
				return err
			}
			if !b.TryTake(100) || b.TryTake(1) {
				return errors.New("inside a bubble: new bucket did not hold exactly its capacity")
			}
			time.Sleep(time.Second)
			if b.TryTake(11) {
				return errors.New("inside a bubble: granted 11 tokens after a 1 s sleep at 10/s")
			}
			if !b.TryTake(10) {
				return errors.New("inside a bubble: denied the 10 tokens a 1 s sleep at 10/s earns")
			}
			time.Sleep(time.Hour)
			if !b.TryTake(100) || b.TryTake(1) {
				return errors.New("inside a bubble: after an hour, the bucket did not hold exactly its capacity")
			}
			return nil
		}()
	})
	if err != nil {
		c.Errorf("%v", err)
	}
}
