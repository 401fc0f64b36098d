package contend_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/impls/mutex"
)

// A hot counter: one atomic word, exact; the zero value is ready.
func ExampleCounter() {
	var hits cas.Counter
	hits.Add(3)
	hits.Add(-1)
	fmt.Println(hits.Load())
	// Output: 2
}

// A rate limiter that tells a client when to come back, on a clock the
// example moves by hand.
func ExampleLimiter() {
	clock := contend.NewManualClock(0)
	lim, err := cas.NewBucket(contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clock}) // 1 token/s, bursts of 2
	if err != nil {
		panic(err)
	}
	fmt.Println(lim.TryTake(1), lim.TryTake(1), lim.TryTake(1))
	d, _ := lim.Delay(1)
	fmt.Println("retry after", d)
	clock.Advance(time.Second)
	fmt.Println(lim.TryTake(1))
	_, err = lim.Delay(3) // more than the bucket can ever hold
	var te *contend.TokenError
	fmt.Println(errors.As(err, &te))
	// Output:
	// true true false
	// retry after 1s
	// true
	// true
}

// A lock whose leases carry fencing tokens: a later holder's token is
// larger, so a resource can refuse a stale holder's write.
func ExampleLock() {
	var l mutex.Lock // the zero value is ready
	ctx := context.Background()
	first, _ := l.Acquire(ctx)
	_, err := l.TryAcquire(ctx)
	fmt.Println(errors.Is(err, contend.ErrHeld))
	_ = first.Release(ctx)
	second, _ := l.Acquire(ctx)
	fmt.Println(second.Token() > first.Token())
	fmt.Println(errors.Is(first.Release(ctx), contend.ErrNotHeld))
	_ = second.Release(ctx)
	// Output:
	// true
	// true
	// true
}

// A semaphore of 4 permits, taken several at a time.
func ExampleSemaphore() {
	sem, err := cas.NewSemaphore(4)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	three, _ := sem.Acquire(ctx, 3)
	_, err = sem.TryAcquire(ctx, 2)
	fmt.Println(errors.Is(err, contend.ErrHeld))
	_, err = sem.Acquire(ctx, 5) // more than there are
	var pe *contend.PermitError
	fmt.Println(errors.As(err, &pe))
	_ = three.Release(ctx)
	// Output:
	// true
	// true
}
