package redislab_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/bsm/redislock"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
	"github.com/contend-lab/contend/remote/redislab"
	"github.com/contend-lab/contend/remote/redisref"
)

// counted is an implementation that counts its round trips.
type counted interface {
	contend.Lock
	RoundTrips() int64
}

// BenchmarkLockHandoff measures the lab's Redis locks and the references
// under contention, on servers of its own: one op is Acquire + Release by
// one of `contenders` goroutines, which draw the b.N ops from a shared
// budget, so that an unfair lock shows in how the ops are spread. It
// reports, besides time per op (the lock's throughput): the Acquire
// latency's p50, p99 and p99.9 (p50-ns, p99-ns, p999-ns), roundtrips/op
// (counted by the client hook, the waiting included), and Jain's fairness
// index over the ops per goroutine (1 when every goroutine got as many).
//
//	go test -run '^$' -bench LockHandoff -count 10 ./remote/redislab/ | tee new.txt
//	benchstat -col /impl new.txt
//
// redis-2procs is the lab's Lock with its contenders split between two
// Lock values, as two processes would be: half the hand-offs then go
// through the other value's wake-up list and listener. redislock runs with
// the adapter's policy (the lab's Redlock's backoff: 1 ms doubling to
// 32 ms with jitter, as redsync's here), and with three others: its
// documented recommendation (ExponentialBackoff with a 16 ms minimum; the
// 512 ms cap is ours), its ExponentialBackoff(1 ms, 32 ms), which has no
// jitter (the adapter's policy before), and polling every millisecond.
func BenchmarkLockHandoff(b *testing.B) {
	_, clients := redistest.Servers(b, 3)
	const ttl = 5 * time.Second
	impls := []struct {
		name string
		new  func(key string) (counted, error)
	}{
		{"redis", func(key string) (counted, error) { return redislab.NewLock(clients[0], key, ttl) }},
		{"redis-2procs", func(key string) (counted, error) {
			var two twoLocks
			for i := range two {
				l, err := redislab.NewLock(clients[0], key, ttl)
				if err != nil {
					return nil, err
				}
				two[i] = l
			}
			return &two, nil
		}},
		{"redlock", func(key string) (counted, error) {
			return redislab.NewRedlock(clients, key, ttl, redislab.WithNodeTimeout(250*time.Millisecond))
		}},
		{"redislock", func(key string) (counted, error) { return redisref.NewRedisLockRef(clients[0], key, ttl) }},
		{"redislock-documented", func(key string) (counted, error) {
			return redisref.NewRedisLockRef(clients[0], key, ttl, redisref.WithRetryStrategy(func() redislock.RetryStrategy {
				return redislock.ExponentialBackoff(16*time.Millisecond, 512*time.Millisecond)
			}))
		}},
		{"redislock-unjittered", func(key string) (counted, error) {
			return redisref.NewRedisLockRef(clients[0], key, ttl, redisref.WithRetryStrategy(func() redislock.RetryStrategy {
				return redislock.ExponentialBackoff(time.Millisecond, 32*time.Millisecond)
			}))
		}},
		{"redislock-poll1ms", func(key string) (counted, error) {
			return redisref.NewRedisLockRef(clients[0], key, ttl, redisref.WithRetryStrategy(func() redislock.RetryStrategy {
				return redislock.LinearBackoff(time.Millisecond)
			}))
		}},
		{"redsync", func(key string) (counted, error) { return redisref.NewRedsyncLock(clients, key, ttl) }},
	}
	for _, impl := range impls {
		for _, g := range []int{1, 100} {
			b.Run(fmt.Sprintf("impl=%s/contenders=%d", impl.name, g), func(b *testing.B) {
				l, err := impl.new(fmt.Sprintf("bench:handoff:%s:%d:%d", impl.name, g, b.N))
				if err != nil {
					b.Fatal(err)
				}
				runHandoff(b, l, g)
			})
		}
	}
}

// twoLocks is two Lock values on one key, as two processes hold: each
// goroutine's first Acquire picks one, in turn, and keeps it.
type twoLocks [2]*redislab.Lock

func (l *twoLocks) RoundTrips() int64 { return l[0].RoundTrips() + l[1].RoundTrips() }

func (l *twoLocks) Acquire(ctx context.Context) (contend.Lease, error) {
	return l[pick(ctx)].Acquire(ctx)
}

func (l *twoLocks) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return l[pick(ctx)].TryAcquire(ctx)
}

type sideKey struct{}

// pick returns the Lock value a goroutine's context names.
func pick(ctx context.Context) int {
	i, _ := ctx.Value(sideKey{}).(int)
	return i
}

// runHandoff runs b.N Acquire + Release ops on l from g goroutines;
// goroutine i's context carries i%2 (see twoLocks).
func runHandoff(b *testing.B, l counted, g int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	op := func() error {
		lease, err := l.Acquire(ctx)
		if err != nil {
			return err
		}
		return lease.Release(ctx)
	}
	// Load the scripts and open connections before measuring.
	if err := op(); err != nil {
		b.Fatal(err)
	}
	var budget atomic.Int64
	budget.Store(int64(b.N))
	per := make([]int64, g)
	hists := make([]*hdrhistogram.Histogram, g)
	errs := make(chan error, g)
	before := l.RoundTrips()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range g {
		hists[i] = hdrhistogram.New(1, int64(time.Minute), 3)
		ctx := context.WithValue(ctx, sideKey{}, i%2)
		wg.Go(func() {
			for budget.Add(-1) >= 0 {
				start := time.Now()
				lease, err := l.Acquire(ctx)
				if err != nil {
					errs <- err
					return
				}
				_ = hists[i].RecordValue(int64(time.Since(start)))
				per[i]++
				if err := lease.Release(ctx); err != nil {
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
	all := hdrhistogram.New(1, int64(time.Minute), 3)
	for _, h := range hists {
		all.Merge(h)
	}
	b.ReportMetric(float64(all.ValueAtQuantile(50)), "p50-ns")
	b.ReportMetric(float64(all.ValueAtQuantile(99)), "p99-ns")
	b.ReportMetric(float64(all.ValueAtQuantile(99.9)), "p999-ns")
	b.ReportMetric(float64(l.RoundTrips()-before)/float64(b.N), "roundtrips/op")
	b.ReportMetric(jain(per), "jain-fairness")
}

// jain is Jain's fairness index of xs: (Σx)² / (n Σx²), 1 when all are
// equal, 1/n when one has everything.
func jain(xs []int64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}
