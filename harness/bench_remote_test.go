package harness

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

// The remote tier's benchmarks, over every registered backend:
//
//	BenchmarkRemoteLock/backend=<name>/workload=<deployment>/impl=<name>/goroutines=<1|10|100>
//	BenchmarkRemoteBucket/backend=<name>/workload=<deployment>/impl=<name>/goroutines=<1|10|100>
//
// They run against throw-away servers on loopback, so they measure round
// trips and the servers' own work more than the Go code. One operation is
// Acquire + Release for a lock and TryTake(1) for a bucket. Each reports,
// besides ns/op (wall time per operation of all goroutines together):
//
//	p50-ns p99-ns p999-ns     latency of one operation as its goroutine saw it
//	roundtrips/op             requests sent per operation, counted by the client
//	jain                      (locks) Jain's fairness index over the goroutines'
//	                          operation counts: 1 equal shares, 1/g one got all
//	maxwait-ns                (locks) the longest single operation
//
// scripts/bench.sh runs them for a time (-benchtime), -count 6, with the
// in-process benchmarks done, so that the machine is otherwise idle.

// remoteBenchGoroutines are the contending goroutine counts.
var remoteBenchGoroutines = []int{1, 10, 100}

// benchClusters are the deployments the benchmarks started, shared by
// every run of a benchmark binary and stopped by TestMain.
var benchClusters struct {
	sync.Mutex
	started map[[2]string]remote.Cluster
}

// benchCluster returns the running deployment of backend, starting it on
// first use. A backend whose server is missing is skipped when its skip
// variable is set, and fails the benchmark otherwise.
func benchCluster(b *testing.B, backend, deployment string) remote.Cluster {
	b.Helper()
	benchClusters.Lock()
	defer benchClusters.Unlock()
	k := [2]string{backend, deployment}
	if c, ok := benchClusters.started[k]; ok {
		return c
	}
	be, ok := BackendByName(backend)
	if !ok {
		b.Fatalf("no backend %q", backend)
	}
	d, ok := be.Deployment(deployment)
	if !ok {
		b.Fatalf("backend %s has no deployment %q", backend, deployment)
	}
	ctx, cancel := context.WithTimeout(context.Background(), servertest.StartTimeout)
	defer cancel()
	c, err := be.Start(ctx, d)
	if err != nil {
		if be.Skipped() {
			b.Skipf("skipping %s: %v", backend, err)
		}
		b.Fatalf("starting %s %s: %v", backend, deployment, err)
	}
	if benchClusters.started == nil {
		benchClusters.started = map[[2]string]remote.Cluster{}
	}
	benchClusters.started[k] = c
	return c
}

// stopBenchClusters stops every deployment the benchmarks started.
func stopBenchClusters() {
	benchClusters.Lock()
	defer benchClusters.Unlock()
	for k, c := range benchClusters.started {
		c.Stop()
		delete(benchClusters.started, k)
	}
}

// remoteOpStats is what runRemoteOps measured.
type remoteOpStats struct {
	latency *hdrhistogram.Histogram // ns
	perG    []int64
}

// runRemoteOps runs op b.N times split over g goroutines and records each
// op's latency. An op's error fails the benchmark.
func runRemoteOps(b *testing.B, g int, op func(ctx context.Context) error) remoteOpStats {
	hists := make([]*hdrhistogram.Histogram, g)
	for i := range hists {
		hists[i] = hdrhistogram.New(1, int64(time.Minute), 3)
	}
	perG := make([]int64, g)
	errs := make([]error, g)
	runParallel(b, g, func(id, n int) int64 {
		ctx := context.Background()
		h := hists[id]
		for range n {
			start := time.Now()
			if err := op(ctx); err != nil {
				errs[id] = err
				return 0
			}
			_ = h.RecordValue(int64(time.Since(start)))
			perG[id]++
		}
		return 0
	})
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	all := hdrhistogram.New(1, int64(time.Minute), 3)
	for _, h := range hists {
		all.Merge(h)
	}
	return remoteOpStats{latency: all, perG: perG}
}

// report reports the latency percentiles, and round trips per op from
// before (-1: not counted).
func (s remoteOpStats) report(b *testing.B, roundTrips int64) {
	b.ReportMetric(float64(s.latency.ValueAtQuantile(50)), "p50-ns")
	b.ReportMetric(float64(s.latency.ValueAtQuantile(99)), "p99-ns")
	b.ReportMetric(float64(s.latency.ValueAtQuantile(99.9)), "p999-ns")
	if roundTrips >= 0 {
		b.ReportMetric(float64(roundTrips)/float64(b.N), "roundtrips/op")
	}
}

// remoteBenchName is the sub-benchmark name of impl on deployment with g
// goroutines.
func remoteBenchName(r RemoteImpl, deployment string, g int) string {
	return fmt.Sprintf("backend=%s/workload=%s/impl=%s/goroutines=%d", r.Backend, deployment, r.Name, g)
}

// countBefore returns an instance's request count now, or -1 if it counts
// none.
func countBefore[T any](inst Instance[T]) int64 {
	if n, ok := inst.RoundTrips(); ok {
		return n
	}
	return -1
}

func BenchmarkRemoteLock(b *testing.B) {
	for _, impl := range RemoteLocks() {
		for _, dep := range impl.Deployments {
			for _, g := range remoteBenchGoroutines {
				b.Run(remoteBenchName(impl.RemoteImpl, dep, g), func(b *testing.B) {
					c := benchCluster(b, impl.Backend, dep)
					inst, err := impl.New(c, fmt.Sprintf("bench:lock:%s:%d:%d", impl.Name, g, b.N), RemoteLease)
					if err != nil {
						b.Fatal(err)
					}
					defer inst.Close()
					op := func(ctx context.Context) error {
						lease, err := inst.Impl.Acquire(ctx)
						if err != nil {
							return err
						}
						return lease.Release(ctx)
					}
					// Load scripts and open connections before measuring.
					if err := op(context.Background()); err != nil {
						b.Fatal(err)
					}
					before := countBefore(inst)
					s := runRemoteOps(b, g, op)
					rt := int64(-1)
					if before >= 0 {
						after, _ := inst.RoundTrips()
						rt = after - before
					}
					s.report(b, rt)
					b.ReportMetric(contendtest.JainFairness(s.perG), "jain")
					b.ReportMetric(float64(s.latency.Max()), "maxwait-ns")
				})
			}
		}
	}
}

func BenchmarkRemoteBucket(b *testing.B) {
	cfg := contend.BucketConfig{Capacity: 1000, Rate: 1e6}
	type contextTaker interface {
		TryTakeContext(ctx context.Context, n int64) (bool, error)
	}
	for _, impl := range RemoteBuckets() {
		for _, dep := range impl.Deployments {
			for _, g := range remoteBenchGoroutines {
				b.Run(remoteBenchName(impl.RemoteImpl, dep, g), func(b *testing.B) {
					c := benchCluster(b, impl.Backend, dep)
					inst, err := impl.New(c, fmt.Sprintf("bench:bucket:%s:%d:%d", impl.Name, g, b.N), cfg)
					if err != nil {
						b.Fatal(err)
					}
					defer inst.Close()
					// A decision that fails must fail the benchmark, not
					// count as a fast denial: take with its error when the
					// bucket can say it.
					op := func(ctx context.Context) error {
						inst.Impl.TryTake(1)
						return nil
					}
					if ct, ok := inst.Impl.(contextTaker); ok {
						op = func(ctx context.Context) error {
							_, err := ct.TryTakeContext(ctx, 1)
							return err
						}
					}
					if err := op(context.Background()); err != nil {
						b.Fatal(err)
					}
					before := countBefore(inst)
					s := runRemoteOps(b, g, op)
					rt := int64(-1)
					if before >= 0 {
						after, _ := inst.RoundTrips()
						rt = after - before
					}
					s.report(b, rt)
				})
			}
		}
	}
}
