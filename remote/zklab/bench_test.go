package zklab_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/remote"
	"github.com/contend-lab/contend/remote/zklab"
	"github.com/contend-lab/contend/remote/zknaive"
	"github.com/contend-lab/contend/remote/zkref"
)

// benchLock is a lock with its own session, as the registry builds them.
type benchLock interface {
	contend.Lock
	remote.RoundTripCounter
	Close() error
}

// BenchmarkLock measures Acquire+Release on the standalone server, by one
// goroutine (uncontended) and by 10 sharing the lock (and its session), for
// the lab's lock, the semaphore of one permit, the article's control and
// go-zookeeper's zk.Lock. It reports the requests sent per operation
// (roundtrips/op, pings excluded).
func BenchmarkLock(b *testing.B) {
	eps := standalone(b)
	warmUp(b, eps)
	impls := []struct {
		name string
		new  func(key string) (benchLock, error)
	}{
		{"zklab", func(k string) (benchLock, error) { return zklab.NewLockAt(eps, k, session) }},
		{"zklab-semaphore", func(k string) (benchLock, error) {
			s, err := zklab.NewSemaphoreAt(eps, k, 1, session)
			return semLock{s}, err
		}},
		{"zknaive", func(k string) (benchLock, error) { return zknaive.NewLockAt(eps, k, session) }},
		{"zkref", func(k string) (benchLock, error) { return zkref.NewLockAt(eps, k, session) }},
	}
	for _, impl := range impls {
		for _, g := range []int{1, 10} {
			b.Run(fmt.Sprintf("impl=%s/goroutines=%d", impl.name, g), func(b *testing.B) {
				l, err := impl.new(fmt.Sprintf("bench-%s-%d-%d", impl.name, g, pathSeq.Add(1)))
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				ctx := context.Background()
				before := l.RoundTrips()
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := range g {
					n := b.N / g
					if w < b.N%g {
						n++
					}
					wg.Go(func() {
						for range n {
							lease, err := l.Acquire(ctx)
							if err != nil {
								b.Error(err)
								return
							}
							if err := lease.Release(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(l.RoundTrips()-before)/float64(b.N), "roundtrips/op")
			})
		}
	}
}

// semLock is a semaphore of one permit as a lock.
type semLock struct{ *zklab.Semaphore }

func (s semLock) Acquire(ctx context.Context) (contend.Lease, error) {
	return s.Semaphore.Acquire(ctx, 1)
}

func (s semLock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return s.Semaphore.TryAcquire(ctx, 1)
}

var warm sync.Once

// warmUp runs acquisitions on the shared server for two seconds before
// the first benchmark: a fresh JVM interprets before its JIT compiles, and
// the first benchmark would otherwise measure that.
func warmUp(b *testing.B, eps []string) {
	warm.Do(func() {
		l, err := zklab.NewLockAt(eps, "bench-warm-up", session)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		ctx := context.Background()
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			lease, err := l.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := lease.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
