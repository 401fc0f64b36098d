package harness

// The benchmark suite: one set of benchmarks over the registry, so that a new
// implementation is benchmarked by adding it to registry.go.
//
// Names are a contract with cmd/report and scripts/bench.sh. Every name is a
// sequence of benchfmt "/key=value" parts, and no value ends in -digits (the
// testing package appends "-GOMAXPROCS" to the last part, and benchfmt would
// read "-8" in "stripes-8" as GOMAXPROCS):
//
//	BenchmarkCounter/workload=<add-only|read-mostly>/impl=<name>/goroutines=<1|gomaxprocs|100>
//	BenchmarkBucket/workload=<always-grant|mostly-deny|near-limit>/clock=<real|frozen>/impl=<name>/goroutines=<1|gomaxprocs|100>
//	BenchmarkKeyed/workload=zipf/impl=<xsync-mapof|sync-map|mutex-map>/goroutines=<1|gomaxprocs|100>
//	BenchmarkFloor/workload=<local-increment|clock-read|atomic-add>/impl=<name>/goroutines=1
//	BenchmarkCorrectness/check=<lost-updates|grant-ratio|wall-clock-step|large-clock>/impl=<name>/goroutines=<gomaxprocs|100>
//	BenchmarkRemoteLock, BenchmarkRemoteBucket: see bench_remote_test.go
//	BenchmarkBucketLatency: see bench_bucket_latency_test.go
//	BenchmarkMemory, BenchmarkGoroutineChurn: see bench_memory_test.go
//
// Goroutines: every throughput benchmark runs at 1, at one per P
// (goroutines=gomaxprocs, resolved when the leaf runs, so that it follows
// -cpu) and at exactly 100 goroutines, started by runParallel below
// rather than by b.RunParallel (which can only run a multiple of GOMAXPROCS).
// b.N is split among them, so ns/op is wall time per operation of the whole
// group: the inverse of aggregate throughput.
//
// Custom units (declared in TestMain so benchstat knows their direction):
//
//	ops/s          operations per second of wall time, all goroutines together
//	               (BenchmarkCounter, BenchmarkKeyed): 1e9 / ns/op
//	grants/s       tokens granted per second of wall time, all goroutines together
//	grant-ratio    BenchmarkBucket and BenchmarkKeyed: granted / requested (what
//	               share of requests the workload lets through; descriptive);
//	               BenchmarkCorrectness: granted / allowed, where allowed is
//	               Capacity + Rate × elapsed: above 1 means the bucket over-granted
//	lost-fraction  |lost updates| / expected sum (BenchmarkCorrectness only)
//	lost-updates   expected sum - loaded sum (BenchmarkCorrectness only)

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/contend-lab/contend/internal/hangreport"
)

// benchUnits are the benchfmt unit metadata lines TestMain prints before a
// benchmark run. benchfmt attaches "Unit <unit> <key>=<value>" lines to the
// unit for the rest of the stream.
//
// grant-ratio is better=lower because in BenchmarkCorrectness, its one
// pass/fail use, a ratio above 1 is an over-grant; in BenchmarkBucket the
// ratio describes the workload and is not compared across implementations.
var benchUnits = []string{
	"Unit ops/s better=higher",
	"Unit grants/s better=higher",
	"Unit grant-ratio better=lower",
	"Unit lost-fraction better=lower",
	"Unit lost-updates better=lower",
	"Unit roundtrips/op better=lower",
	"Unit jain better=higher",
}

// TestMain prints the unit metadata, only when benchmarks run, so that the
// output of `go test` for tests alone stays clean.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		for _, u := range benchUnits {
			fmt.Println(u)
		}
	}
	code := hangreport.Run(m)
	stopBenchClusters()
	os.Exit(code)
}

// onePerP stands for "as many goroutines as GOMAXPROCS" in a goroutine
// count. It is resolved inside the leaf benchmark, at run time, because
// -cpu sets GOMAXPROCS only around each leaf: the parent that names the
// sub-benchmarks runs at whatever GOMAXPROCS was left behind.
const onePerP = 0

// benchGoroutines returns the goroutine counts every throughput benchmark
// runs at: 1, one per P (named goroutines=gomaxprocs) and 100.
func benchGoroutines() []int { return []int{1, onePerP, 100} }

// resolveGoroutines returns g, or GOMAXPROCS for onePerP.
func resolveGoroutines(g int) int {
	if g == onePerP {
		return runtime.GOMAXPROCS(0)
	}
	return g
}

// goroutinesName is the name part for g goroutines.
func goroutinesName(g int) string {
	if g == onePerP {
		return "goroutines=gomaxprocs"
	}
	return "goroutines=" + strconv.Itoa(g)
}

// runParallel runs body on g goroutines, giving goroutine id (0 <= id < g) an
// iteration count n with the counts summing to b.N, and returns the sum of
// what the bodies returned (a grant count, or a value to sink).
//
// Setup done by the caller before runParallel is not timed: the goroutines
// are started and parked at a barrier, then the timer is reset and they are
// released together. The timer stops when the last one returns, so
// b.Elapsed() afterwards is the timed wall time.
//
// The body loops n times itself (one indirect call per goroutine, not per
// operation) and should return something derived from every iteration's
// result, so that the compiler cannot eliminate the work.
func runParallel(b *testing.B, g int, body func(id, n int) int64) int64 {
	b.Helper()
	if g < 1 {
		b.Fatalf("runParallel: %d goroutines", g)
	}
	results := make([]int64, g)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(g)
	done.Add(g)
	per, extra := b.N/g, b.N%g
	for id := range g {
		n := per
		if id < extra {
			n++
		}
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			results[id] = body(id, n)
		}()
	}
	ready.Wait()
	b.ResetTimer()
	close(start)
	done.Wait()
	b.StopTimer()
	var sum int64
	for _, r := range results {
		sum += r
	}
	return sum
}

// sink keeps benchmark results alive: storing to a package-level variable
// is a side effect the compiler must keep.
var sink int64

// reportPerSecond reports count per second of the benchmark's timed wall
// time as metric unit.
func reportPerSecond(b *testing.B, count float64, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(count/s, unit)
	}
}
