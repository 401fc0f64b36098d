package harness

// Memory benchmarks: what the registered implementations hold on the heap.
//
//	BenchmarkMemory/workload=<counter|bucket|lock|semaphore>/impl=<name>/goroutines=1   B/instance
//	BenchmarkMemory/workload=keyed/impl=<name>/goroutines=1                             B/key
//	BenchmarkGoroutineChurn/impl=<bucket>/goroutines=10000                              B/goroutine
//
// Each is measured with runtime.MemStats.HeapAlloc (see measureHeap):
// read after runtime.GC, which returns only when the cycle's sweep is
// done, and ReadMemStats flushes every P's allocation cache, so HeapAlloc
// is then exactly the bytes of reachable heap objects, size-class rounding
// included. The difference between a reading before the work and one
// after it and a GC, with everything the work built kept reachable, is
// what the work holds. What other goroutines of the process allocate and
// keep meanwhile is counted too: a few hundred bytes here, about 0.1 B per
// instance or key at the counts below (TestMeasureHeap checks known sizes
// to 1 B), and up to a few B per goroutine in the churn at GOMAXPROCS
// above the core count. Goroutine stacks are not heap and are not counted.
//
// The workload runs once per iteration, at most memoryMaxRuns times
// whatever b.N is: run them with -benchtime 1x (see runFirstCPU for what
// that needs), and -count for samples. ns/op, B/op and allocs/op are
// overridden to mean time, bytes allocated (garbage included) and
// allocations per instance built, per key inserted or per goroutine run.

import (
	"flag"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/raceflag"
	"github.com/contend-lab/contend/keyed"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func init() {
	benchUnits = append(benchUnits,
		"Unit B/instance better=lower",
		"Unit B/key better=lower",
		"Unit B/goroutine better=lower",
	)
}

const (
	// memoryInstances is how many instances BenchmarkMemory builds and
	// keeps per measurement. (A keyed limiter gets keyedKeys keys, the
	// keyed benchmark's key space.)
	memoryInstances = 2_000
	// memoryMaxRuns caps the measurements of one result; see the file's
	// documentation.
	memoryMaxRuns = 3
	// churnBatch is how many of BenchmarkGoroutineChurn's goroutines run at
	// once: a server's worth of short requests.
	churnBatch = contendtest.StressGoroutines
	// churnWarmUp is how many goroutines that touch no bucket run before a
	// churn measurement: enough that the runtime's free goroutine
	// descriptors, spread over the Ps' caches, cover a batch on any P.
	churnWarmUp = 10 * churnBatch
	// leakFloorBytes is the least a bucket can keep for a goroutine: one
	// heap object of the smallest size class.
	leakFloorBytes = 8
)

// churnGoroutines is how many goroutines BenchmarkGoroutineChurn runs.
const churnGoroutines = 10_000

// memoryBucketConfig is the bucket BenchmarkMemory builds: the near-limit
// workload's (a bucket's size does not depend on its configuration).
var memoryBucketConfig = contend.BucketConfig{Capacity: nearLimitCapacity, Rate: nearLimitRate}

// heapUse is what a measured piece of work did to the heap.
type heapUse struct {
	retained  int64  // growth of the live heap: what the work left reachable
	allocated uint64 // bytes allocated, garbage included
	allocs    uint64 // allocations
}

// measureHeap runs work between garbage collections and returns its
// heapUse; the benchmark timer (b; nil in tests) runs only around work.
// The caller keeps what work builds reachable until measureHeap returns
// (runtime.KeepAlive after the call).
//
// The caller starts from a collected heap: the testing package collects
// before each benchmark run (testing.B.runN), a test calls runtime.GC
// itself. A cycle only moves sync.Pool contents to the pools' victim
// caches; the one here frees them, so that the reading before work does
// not count them (they would show as freed by work).
func measureHeap(b *testing.B, work func()) heapUse {
	var before, built, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if b != nil {
		b.StartTimer()
	}
	work()
	if b != nil {
		b.StopTimer()
	}
	runtime.ReadMemStats(&built)
	runtime.GC()
	runtime.ReadMemStats(&after)
	return heapUse{
		retained:  int64(after.HeapAlloc) - int64(before.HeapAlloc),
		allocated: built.TotalAlloc - before.TotalAlloc,
		allocs:    built.Mallocs - before.Mallocs,
	}
}

// memoryMeasure runs measure (which returns one heapUse for per units of
// work: instances, keys or goroutines) min(b.N, memoryMaxRuns) times and
// reports the mean retained bytes per unit as unit, and ns/op, B/op and
// allocs/op per unit of work.
func memoryMeasure(b *testing.B, per int, unit string, measure func() heapUse) {
	b.StopTimer()
	b.ResetTimer()
	runs := min(b.N, memoryMaxRuns)
	var retained, allocated, allocs float64
	for range runs {
		u := measure()
		retained += float64(u.retained)
		allocated += float64(u.allocated)
		allocs += float64(u.allocs)
	}
	n := float64(runs * per)
	b.ReportMetric(retained/n, unit)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/op")
	b.ReportMetric(allocated/n, "B/op")
	b.ReportMetric(allocs/n, "allocs/op")
}

// memoryCase builds one instance of a registered implementation and uses
// it once, as its first caller would (some build parts of their state on
// first use).
type memoryCase struct {
	family, impl string
	build        func() (any, error)
}

// memoryCases returns every registered counter, bucket, lock and
// semaphore (capacity benchSemCapacity), in registry order.
func memoryCases() []memoryCase {
	var cases []memoryCase
	for _, impl := range Counters() {
		cases = append(cases, memoryCase{"counter", impl.Name, func() (any, error) {
			c := impl.New()
			c.Add(1)
			return c, nil
		}})
	}
	for _, impl := range Buckets() {
		cases = append(cases, memoryCase{"bucket", impl.Name, func() (any, error) {
			bk, err := impl.New(memoryBucketConfig)
			if err != nil {
				return nil, err
			}
			bk.TryTake(1)
			return bk, nil
		}})
	}
	for _, impl := range Locks() {
		cases = append(cases, memoryCase{"lock", impl.Name, func() (any, error) {
			l := impl.New()
			return l, acquireRelease(l.Acquire(bg))
		}})
	}
	for _, impl := range Semaphores() {
		cases = append(cases, memoryCase{"semaphore", impl.Name, func() (any, error) {
			s, err := impl.New(benchSemCapacity)
			if err != nil {
				return nil, err
			}
			return s, acquireRelease(s.Acquire(bg, 1))
		}})
	}
	return cases
}

// acquireRelease releases the lease an Acquire returned.
func acquireRelease(lease contend.Lease, err error) error {
	if err != nil {
		return err
	}
	return lease.Release(bg)
}

// BenchmarkMemory reports the heap bytes each registered counter, bucket,
// lock and semaphore holds (B/instance), and each keyed limiter per key
// (B/key); see the top of the file for how they are measured.
//
//   - B/instance: memoryInstances instances built and each used once (one
//     Add, TryTake(1), or Acquire and Release of one permit), all kept;
//     the live heap's growth divided by their number. It includes what an
//     instance points to (pershard's per-P stripes and caches, sized by
//     GOMAXPROCS at construction: measure it at each -cpu). A semaphore
//     has capacity benchSemCapacity.
//   - B/key: one Limiter of keyedConfig, built before the first reading;
//     the growth after Allow on keyedKeys new keys, divided by keyedKeys.
//     It is an average at that size: maps grow by doubling, so the cost of
//     one more key depends on where the table stands.
func BenchmarkMemory(b *testing.B) {
	for _, c := range memoryCases() {
		runFirstCPU(b, "workload="+c.family+"/impl="+c.impl+"/goroutines=1", func(b *testing.B) {
			memoryMeasure(b, memoryInstances, "B/instance", func() heapUse {
				keep := make([]any, memoryInstances)
				var err error
				u := measureHeap(b, func() {
					for i := range keep {
						if keep[i], err = c.build(); err != nil {
							return
						}
					}
				})
				if err != nil {
					b.Fatalf("%s %s: %v", c.family, c.impl, err)
				}
				runtime.KeepAlive(keep)
				return u
			})
		})
	}
	for _, impl := range keyed.Impls() {
		runFirstCPU(b, "workload=keyed/impl="+impl.Name+"/goroutines=1", func(b *testing.B) {
			memoryMeasure(b, keyedKeys, "B/key", func() heapUse {
				cfg := keyedConfig
				cfg.Clock = contend.NewManualClock(0) // nothing refills, so a sweep drops no key
				l, err := impl.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				u := measureHeap(b, func() {
					for k := range uint64(keyedKeys) {
						l.Allow(k)
					}
				})
				runtime.KeepAlive(l)
				return u
			})
		})
	}
}

// BenchmarkGoroutineChurn measures what a bucket keeps for goroutines that
// have come and gone: churnGoroutines goroutines, churnBatch at a time,
// each calling TryTake(1) once and exiting, then a GC. Metric B/goroutine
// is the growth of the live heap over the run, with the bucket built
// before it (see the top of the file), divided by the goroutines. A bucket
// with per-goroutine state it cannot free (the per-goroutine anti-pattern)
// keeps some for every goroutine that ever called it; a shared bucket
// keeps nothing. Every registered bucket runs, with a token for every
// goroutine; the racy control is skipped under -race.
//
// Before the measurement churnWarmUp goroutines that touch no bucket run,
// so that the runtime's pool of goroutine descriptors (heap objects, kept
// for reuse) is filled and is not counted against the bucket.
func BenchmarkGoroutineChurn(b *testing.B) {
	for _, impl := range Buckets() {
		if impl.Guarantee == Racy && raceflag.Enabled {
			continue
		}
		runFirstCPU(b, "impl="+impl.Name+"/goroutines="+strconv.Itoa(churnGoroutines), func(b *testing.B) {
			memoryMeasure(b, churnGoroutines, "B/goroutine", func() heapUse {
				bk, err := impl.New(contend.BucketConfig{Capacity: churnGoroutines, Rate: 1})
				if err != nil {
					b.Fatal(err)
				}
				churn(churnWarmUp, func() {})
				u := measureHeap(b, func() { churn(churnGoroutines, func() { bk.TryTake(1) }) })
				runtime.KeepAlive(bk)
				return u
			})
		})
	}
}

// churn runs g short-lived goroutines, churnBatch at a time, each calling f
// once. A batch starts when the last one's goroutines have exited, not
// only returned from f: an exited goroutine's descriptor goes back to the
// runtime's free list (runtime.NumGoroutine counts what is not on it), so
// a new batch reuses it instead of allocating one.
func churn(g int, f func()) {
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for started := 0; started < g; {
		batch := min(churnBatch, g-started)
		wg.Add(batch)
		for range batch {
			go func() {
				defer wg.Done()
				f()
			}()
		}
		started += batch
		wg.Wait()
		// Sleep rather than yield: a yield takes the scheduler's lock,
		// which the exiting goroutines need. Bounded, in case another
		// goroutine of the process starts meanwhile.
		for i := 0; i < 1000 && runtime.NumGoroutine() > base; i++ {
			time.Sleep(time.Microsecond)
		}
	}
}

// runFirstCPU is b.Run for a benchmark run with -benchtime 1x. The testing
// package runs every benchmark once with b.N = 1 before it sets GOMAXPROCS
// for the first -cpu value, and with 1x keeps that run as the first
// sample: it would run at whatever GOMAXPROCS the previous benchmark left
// (its last -cpu value) under the first value's name. Setting GOMAXPROCS
// to the first -cpu value beforehand makes that sample what its name says.
func runFirstCPU(b *testing.B, name string, f func(b *testing.B)) bool {
	if f := flag.Lookup("test.cpu"); f != nil {
		first, _, _ := strings.Cut(f.Value.String(), ",")
		if procs, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && procs > 0 {
			runtime.GOMAXPROCS(procs)
		}
	}
	return b.Run(name, f)
}

// garbage receives allocations that TestMeasureHeap drops at once.
var garbage []byte

// TestMeasureHeap: measureHeap reads what kept objects hold, to the byte
// of their size class, and does not count garbage.
func TestMeasureHeap(t *testing.T) {
	cases := []struct {
		name  string
		build func() any
		want  float64 // bytes per object
	}{
		{"64-byte objects", func() any { return new([64]byte) }, 64},
		{"100-byte objects take their 112-byte size class", func() any { return new([100]byte) }, 112},
		{"a 1 KiB slice, its header boxed in the interface", func() any { return make([]byte, 1024) }, 1024 + 24},
		{"garbage only", func() any { garbage = make([]byte, 256); return nil }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10_000 // the noise of a test process, spread thinner
			keep := make([]any, n)
			runtime.GC() // as the testing package does before a benchmark run
			u := measureHeap(nil, func() {
				for i := range keep {
					keep[i] = tc.build()
				}
			})
			runtime.KeepAlive(keep)
			assert.InDelta(t, tc.want, float64(u.retained)/n, 1, "retained bytes per object")
			assert.GreaterOrEqual(t, u.allocs, uint64(n), "allocations")
		})
	}
}

// TestGoroutineChurnSeesTheLeak: the churn measurement finds the
// per-goroutine bucket's per-goroutine state, and nothing for the atomic
// bucket.
func TestGoroutineChurnSeesTheLeak(t *testing.T) {
	const goroutines = 2_000
	perGoroutine := func(name string) float64 {
		impl, ok := BucketByName(name)
		require.True(t, ok, name)
		bk, err := impl.New(contend.BucketConfig{Capacity: goroutines, Rate: 1})
		require.NoError(t, err)
		churn(churnWarmUp, func() {})
		runtime.GC()
		u := measureHeap(nil, func() { churn(goroutines, func() { bk.TryTake(1) }) })
		runtime.KeepAlive(bk)
		return float64(u.retained) / goroutines
	}
	assert.Greater(t, perGoroutine("per-goroutine"), 100.0, "per-goroutine keeps a bucket and a map entry per goroutine")
	assert.Less(t, perGoroutine("atomic"), float64(leakFloorBytes), "a shared bucket keeps nothing per goroutine")
}
