package contendtest_test

import (
	"fmt"
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/refill"
)

// mutexBucket is a bucket written outside the lab: a mutex around the
// lab's fixed-point arithmetic (package refill).
type mutexBucket struct {
	mu    sync.Mutex
	limit refill.Limit
	clock contend.Clock
	start int64
	tat   uint64
}

func newMutexBucket(cfg contend.BucketConfig) (contend.Bucket, error) {
	limit, err := cfg.Limit() // a *contend.ConfigError for a bad cfg
	if err != nil {
		return nil, err
	}
	clock := cfg.ClockOrDefault()
	return &mutexBucket{limit: limit, clock: clock, start: clock.Now()}, nil
}

func (b *mutexBucket) TryTake(n int64) bool {
	if n <= 0 || uint64(n) > b.limit.Capacity() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	next, ok := b.limit.Take(b.tat, b.limit.Elapsed(b.start, b.clock.Now()), uint64(n))
	if ok {
		b.tat = next
	}
	return ok
}

// ExampleBucket checks a bucket written outside the lab. In a test, one
// line runs every check as a subtest:
//
//	func TestMutexBucket(t *testing.T) { contendtest.Bucket(t, newMutexBucket) }
//
// Outside a test, as here, each check runs on its own, with a nil
// *testing.T; the one that needs a synctest bubble, and so a test, is
// skipped.
func ExampleBucket() {
	for _, c := range contendtest.BucketChecks() {
		if err := c.Run(nil, newMutexBucket); err != nil {
			fmt.Println(c.Name(), err)
		} else {
			fmt.Println(c.Name(), "ok")
		}
	}
	// Output:
	// starts-full ok
	// all-or-nothing ok
	// refill-at-boundaries ok
	// capped-at-capacity ok
	// impossible-requests ok
	// decades-idle ok
	// clock-standing-still ok
	// clock-backwards ok
	// rate-edges ok
	// bad-config ok
	// synctest-bubble contendtest: skipped: the synctest bubble needs a *testing.T
	// refill-after-take ok
	// textbook ok
	// stalled-reader ok
	// linearizable ok
	// stress ok
	// stale-readings ok
}
