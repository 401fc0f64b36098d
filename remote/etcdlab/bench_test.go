package etcdlab

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/internal/servertest"
)

// BenchmarkLock measures Acquire+Release on one etcd member, uncontended
// (one goroutine), two goroutines taking turns, and 10 goroutines, on one
// Lock (one client), and reports the requests sent per acquisition
// (roundtrips/op; the lease's keep-alives included).
func BenchmarkLock(b *testing.B) {
	cl := servertest.Start(b, etcdserver.Backend, etcdserver.Single)
	for _, g := range []int{1, 2, 10} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			l, err := NewLockAt(cl.Endpoints(), b.Name(), 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			benchAcquire(b, g, l.RoundTrips, func(ctx context.Context) (contend.Lease, error) { return l.Acquire(ctx) })
		})
	}
}

// BenchmarkSemaphore is BenchmarkLock for a semaphore of 3 permits, each
// Acquire taking one.
func BenchmarkSemaphore(b *testing.B) {
	cl := servertest.Start(b, etcdserver.Backend, etcdserver.Single)
	for _, g := range []int{1, 2, 10} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s, err := NewSemaphoreAt(cl.Endpoints(), b.Name(), 3, 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAcquire(b, g, s.RoundTrips, func(ctx context.Context) (contend.Lease, error) { return s.Acquire(ctx, 1) })
		})
	}
}

// benchAcquire runs b.N acquire+release pairs split among g goroutines and
// reports roundtrips/op from rt.
func benchAcquire(b *testing.B, g int, rt func() int64, acquire func(context.Context) (contend.Lease, error)) {
	ctx := context.Background()
	// The first acquisition grants the client's lease: outside the timing.
	lease, err := acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		b.Fatal(err)
	}
	start := rt()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range g {
		n := b.N / g
		if i < b.N%g {
			n++
		}
		wg.Go(func() {
			for range n {
				lease, err := acquire(ctx)
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
	b.ReportMetric(float64(rt()-start)/float64(b.N), "roundtrips/op")
}
