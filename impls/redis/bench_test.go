package redislab

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/contend-lab/contend"
)

// These benchmarks run against throw-away servers on loopback, so they
// measure round trips and Redis's own work more than the Go code. Each
// reports roundtrips/op from the implementation's counter. With the other
// benchmarks of the lab measured on the same cores, run them with
// -benchtime 1x unless the machine is otherwise idle. scripts/bench.sh runs
// them for a time (-benchtime 300ms), when redis-server is installed.

var benchGoroutines = []int{1, 10, 100}

// runParallel runs op b.N times split over g goroutines, which it starts
// itself (b.RunParallel would run a multiple of GOMAXPROCS), and reports
// the latency of one op as p50-ns, p99-ns and p999-ns (HdrHistogram, 3
// significant digits; the time.Now around each op costs ~60 ns against
// round trips of ~30 µs).
func runParallel(b *testing.B, g int, op func(ctx context.Context) error) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, g)
	hists := make([]*hdrhistogram.Histogram, g)
	for i := range hists {
		hists[i] = hdrhistogram.New(1, int64(time.Minute), 3)
	}
	b.ResetTimer()
	for i := range g {
		n := b.N / g
		if i < b.N%g {
			n++
		}
		h := hists[i]
		wg.Go(func() {
			for range n {
				start := time.Now()
				if err := op(ctx); err != nil {
					errs <- err
					return
				}
				_ = h.RecordValue(int64(time.Since(start)))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := hdrhistogram.New(1, int64(time.Minute), 3)
	for _, h := range hists {
		all.Merge(h)
	}
	b.ReportMetric(float64(all.ValueAtQuantile(50)), "p50-ns")
	b.ReportMetric(float64(all.ValueAtQuantile(99)), "p99-ns")
	b.ReportMetric(float64(all.ValueAtQuantile(99.9)), "p999-ns")
}

type counted interface{ RoundTrips() int64 }

func reportRoundTrips(b *testing.B, c counted, before int64) {
	b.ReportMetric(float64(c.RoundTrips()-before)/float64(b.N), "roundtrips/op")
}

func BenchmarkRedisLock(b *testing.B) {
	_, clients := newServers(b, 3)
	const ttl = 5 * time.Second
	impls := []struct {
		name string
		make func(key string) (contend.Lock, counted, error)
	}{
		{"redis", func(key string) (contend.Lock, counted, error) {
			l, err := NewLock(clients[0], key, ttl)
			return l, l, err
		}},
		{"redlock", func(key string) (contend.Lock, counted, error) {
			l, err := NewRedlock(clients, key, ttl)
			return l, l, err
		}},
		{"redsync", func(key string) (contend.Lock, counted, error) {
			l, err := NewRedsyncLock(clients, key, ttl)
			return l, l, err
		}},
		{"redislock", func(key string) (contend.Lock, counted, error) {
			l, err := NewRedisLockRef(clients[0], key, ttl)
			return l, l, err
		}},
		{"naive", func(key string) (contend.Lock, counted, error) {
			l, err := NewNaiveLock(clients[0], key, ttl, WithPollInterval(time.Millisecond))
			return l, l, err
		}},
	}
	for _, impl := range impls {
		for _, g := range benchGoroutines {
			b.Run(fmt.Sprintf("impl=%s/goroutines=%d", impl.name, g), func(b *testing.B) {
				l, c, err := impl.make(fmt.Sprintf("bench:lock:%s:%d:%d", impl.name, g, b.N))
				if err != nil {
					b.Fatal(err)
				}
				op := func(ctx context.Context) error {
					lease, err := l.Acquire(ctx)
					if err != nil {
						return err
					}
					return lease.Release(ctx)
				}
				// Load the scripts and open a connection before measuring.
				if err := op(context.Background()); err != nil {
					b.Fatal(err)
				}
				before := c.RoundTrips()
				runParallel(b, g, op)
				reportRoundTrips(b, c, before)
			})
		}
	}
}

func BenchmarkRedisBucket(b *testing.B) {
	_, c := newServer(b)
	cfg := contend.BucketConfig{Capacity: 1000, Rate: 1e6}
	type bucket interface {
		counted
		TryTakeContext(ctx context.Context, n int64) (bool, error)
	}
	impls := []struct {
		name string
		make func(key string) (bucket, error)
	}{
		{"redis", func(key string) (bucket, error) { return NewBucket(c, key, cfg) }},
		{"redis_rate", func(key string) (bucket, error) { return NewRedisRateBucket(c, key, cfg) }},
	}
	for _, impl := range impls {
		for _, g := range benchGoroutines {
			b.Run(fmt.Sprintf("impl=%s/goroutines=%d", impl.name, g), func(b *testing.B) {
				bk, err := impl.make(fmt.Sprintf("bench:bucket:%s:%d:%d", impl.name, g, b.N))
				if err != nil {
					b.Fatal(err)
				}
				// Load the script and open a connection before measuring.
				if _, err := bk.TryTakeContext(context.Background(), 1); err != nil {
					b.Fatal(err)
				}
				before := bk.RoundTrips()
				runParallel(b, g, func(ctx context.Context) error {
					_, err := bk.TryTakeContext(ctx, 1)
					return err
				})
				reportRoundTrips(b, bk, before)
			})
		}
	}
}
