package contendtest_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// lostUpdateCounter reads, yields, and writes back: free of data races (every
// access is atomic) and still wrong, the check-then-act bug in its plainest form.
type lostUpdateCounter struct{ n atomic.Int64 }

func (c *lostUpdateCounter) Add(d int64) {
	v := c.n.Load()
	runtime.Gosched()
	c.n.Store(v + d)
}
func (c *lostUpdateCounter) Load() int64 { return c.n.Load() }

func newLostUpdateCounter() contend.Counter { return new(lostUpdateCounter) }

// checkThenActBucket decides on a loaded state and stores the result without
// a compare-and-swap, yielding in between: it over-grants under concurrency.
type checkThenActBucket struct {
	p bucketcore.Params
	g atomic.Uint64
}

func (b *checkThenActBucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	g := b.g.Load()
	next, ok := b.p.Limit.Take(g, b.p.Elapsed(), uint64(n))
	if ok {
		runtime.Gosched()
		b.g.Store(next)
	}
	return ok
}

func newCheckThenActBucket(cfg contend.BucketConfig) (contend.Bucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	return &checkThenActBucket{p: p}, nil
}

// oneExtraToken is an exact bucket that grants one token too many, once.
type oneExtraToken struct {
	contend.Bucket
	spent atomic.Bool
}

func (b *oneExtraToken) TryTake(n int64) bool {
	if n == 1 && b.spent.CompareAndSwap(false, true) {
		return true
	}
	return b.Bucket.TryTake(n)
}

// slowBucket refills at 90% of its configured rate: it never over-grants,
// but under-grants by 10%.
func newSlowBucket(cfg contend.BucketConfig) (contend.Bucket, error) {
	cfg.Rate *= 0.9
	return newCheckThenActBucket(cfg) // single-word state; with a CAS it would be exact
}

// underGrantPatience bounds how long the under-grant case waits for a run
// that had the CPU, beyond its first 20 tries, on a loaded machine.
const underGrantPatience = 20 * time.Second

func TestStressChecksCatchFaults(t *testing.T) {
	t.Run("counter that loses updates", func(t *testing.T) {
		contendtest.WithGOMAXPROCS(2, func() {
			run := contendtest.RunCounter(newLostUpdateCounter(), contendtest.StressGoroutines, 200)
			assert.Error(t, contendtest.CheckCounterRun(run), "100 goroutines that read, yield and write back must lose updates")
		})
	})
	t.Run("bucket that over-grants", func(t *testing.T) {
		cfg := contendtest.StressBucketConfig
		contendtest.WithGOMAXPROCS(2, func() {
			run, err := contendtest.RunBucket(newCheckThenActBucket, cfg, contendtest.StressGoroutines, 50*time.Millisecond)
			require.NoError(t, err)
			assert.ErrorContains(t, contendtest.CheckBucketRun(run, cfg, 0), "over-granted")
		})
	})
	t.Run("bucket that over-grants by one token", func(t *testing.T) {
		newBucket := func(cfg contend.BucketConfig) (contend.Bucket, error) {
			b, err := newFaulty("")(cfg)
			if err != nil {
				return nil, err
			}
			return &oneExtraToken{Bucket: b}, nil
		}
		cfg := contendtest.StressFrozenConfig()
		run, err := contendtest.RunBucket(newBucket, cfg, contendtest.StressGoroutines, 50*time.Millisecond)
		require.NoError(t, err)
		assert.ErrorContains(t, contendtest.CheckBucketRun(run, cfg, 0), "over by 1", "a single extra token must be caught")
	})
	t.Run("bucket that under-grants", func(t *testing.T) {
		// One goroutine: the slow bucket's own check-then-act bug cannot
		// over-grant, so only the under-grant remains to be caught.
		// The check measures supply over the time the goroutine was busy,
		// and the slow bucket keeps earning while it is descheduled, so a
		// 10% under-grant shows only in a run that was busy over 95% of the
		// time: with a busy core (other test packages) retry until one is,
		// after collecting the garbage of the tests before.
		runtime.GC()
		cfg := contendtest.StressBucketConfig
		var run contendtest.BucketRun
		tries := 0
		for deadline := time.Now().Add(underGrantPatience); tries < 20 || time.Now().Before(deadline); tries++ {
			var err error
			run, err = contendtest.RunBucket(newSlowBucket, cfg, 1, 100*time.Millisecond)
			require.NoError(t, err)
			if run.Busy >= run.Elapsed*95/100 {
				break
			}
		}
		require.GreaterOrEqual(t, run.Busy, run.Elapsed*95/100, "no run in %d had the CPU 95%% of the time", tries)
		require.True(t, run.DemandExceededSupply(), "one goroutine must out-ask 50,000 tokens/s")
		assert.ErrorContains(t, contendtest.CheckBucketRun(run, cfg, 0), "under-granted")
		// An approximate bucket that states an under-grant bound of a
		// tenth of the run's supply is within it.
		assert.NoError(t, contendtest.CheckBucketRun(run, cfg, run.Supply/10), "within the stated under-grant bound")
	})
	// The stress checks report what CheckCounterRun and CheckBucketRun
	// find.
	t.Run("stress checks", func(t *testing.T) {
		assert.Error(t, find(t, contendtest.CounterChecks(), "stress").Run(t, newLostUpdateCounter), "a counter that loses updates")
		assert.ErrorContains(t, find(t, contendtest.BucketChecks(), "stress").Run(t, newCheckThenActBucket), "over-granted", "a bucket that over-grants")
	})
}
