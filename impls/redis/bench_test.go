package redislab

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/contend-lab/contend"
)

// These benchmarks run against throw-away servers on loopback, so they
// measure round trips and Redis's own work more than the Go code. Each
// reports roundtrips/op from the implementation's counter. With the other
// benchmarks of the lab measured on the same cores, run them with
// -benchtime 1x unless the machine is otherwise idle.

var benchGoroutines = []int{1, 10, 100}

// runParallel runs op b.N times split over g goroutines, which it starts
// itself (b.RunParallel would run a multiple of GOMAXPROCS).
func runParallel(b *testing.B, g int, op func(ctx context.Context) error) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, g)
	b.ResetTimer()
	for i := range g {
		n := b.N / g
		if i < b.N%g {
			n++
		}
		wg.Go(func() {
			for range n {
				if err := op(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
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
