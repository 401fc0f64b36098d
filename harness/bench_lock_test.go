package harness

// Lock and semaphore benchmarks, over the registry (registry_locks.go):
//
//	BenchmarkLock/workload=<empty|work>/impl=<name>/goroutines=<1|gomaxprocs|100>
//	BenchmarkSemaphore/workload=<empty|work>/impl=<name>/goroutines=<1|gomaxprocs|100>
//	BenchmarkLockLatency/impl=<name>/goroutines=100
//
// One operation of BenchmarkLock is Acquire, a critical section and
// Release; of BenchmarkSemaphore the same with 1 permit of a semaphore of
// capacity 4. The critical section is empty (workload=empty: the lock's own
// cost and its hand-off under contention) or WorkRounds rounds of Work
// (workload=work: about 50 ns of xorshift arithmetic on a register, whose
// result, mixed with the lease's token, is returned to runParallel and
// sunk, so the compiler cannot remove it). ns/op is wall time per
// operation of all goroutines together, and ops/s its inverse. Acquire is
// given context.Background(), so these measure each lock's non-cancellable
// path (for mutex, sync.Mutex.Lock itself); BenchmarkLockLatency goes
// through RunLock, whose contexts expire, and so measures the cancellable
// paths.
//
// BenchmarkLockLatency runs RunLock for 50 ms per iteration, with 100
// goroutines and the work critical section, and reports the distribution
// of Acquire latencies over all iterations (p50-ns, p99-ns, p999-ns),
// Jain's fairness index over the goroutines' acquisition counts
// (jain-fairness, 1 = equal shares, 0.01 = one goroutine got everything),
// and acquisitions per second (ops/s).
//
// scripts/bench.sh runs BenchmarkLock and BenchmarkSemaphore for a time
// (-benchtime 20ms: the ticket lock convoys under oversubscription), and
// BenchmarkLockLatency with -benchtime 1x, like BenchmarkCorrectness.

import (
	"runtime"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/raceflag"
)

func init() {
	benchUnits = append(benchUnits,
		"Unit p50-ns better=lower",
		"Unit p99-ns better=lower",
		"Unit p999-ns better=lower",
		"Unit jain-fairness better=higher",
		"Unit overlaps better=lower",
		"Unit overlap-fraction better=lower",
		"Unit max-held better=lower",
		"Unit overflows better=lower",
	)
}

// lockWorkloads are the critical sections of BenchmarkLock and
// BenchmarkSemaphore, as rounds of Work.
var lockWorkloads = []struct {
	name   string
	rounds int
}{
	{"empty", 0},
	{"work", contendtest.WorkRounds},
}

// benchSemCapacity is BenchmarkSemaphore's capacity; each operation takes
// one permit.
const benchSemCapacity = 4

// latencyRun is how long each BenchmarkLockLatency iteration runs RunLock.
const latencyRun = 50 * time.Millisecond

// lockCycles runs n Acquire / Work(rounds) / Release cycles on acquire and
// returns a value derived from every token and critical section, to sink.
func lockCycles(b *testing.B, acquire func() (contend.Lease, error), seed, n, rounds int) int64 {
	acc := uint64(seed) + 1
	for range n {
		lease, err := acquire()
		if err != nil {
			b.Errorf("Acquire: %v", err)
			return 0
		}
		acc = contendtest.Work(acc^lease.Token(), rounds)
		if err := lease.Release(bg); err != nil {
			b.Errorf("Release: %v", err)
			return 0
		}
	}
	return int64(acc)
}

// BenchmarkLock measures every registered Lock's throughput; see the top of
// the file. The racy control (naive) is skipped under -race, and a lock
// whose waiters spin in FIFO order (LockImpl.SpinsFIFO: ticket) is skipped
// where goroutines outnumber GOMAXPROCS or cores, where it convoys and a
// sample takes seconds; BenchmarkLockLatency measures it there.
func BenchmarkLock(b *testing.B) {
	for _, w := range lockWorkloads {
		b.Run("workload="+w.name, func(b *testing.B) {
			for _, impl := range Locks() {
				if impl.Guarantee == Racy && raceflag.Enabled {
					continue
				}
				b.Run("impl="+impl.Name, func(b *testing.B) {
					for _, g := range benchGoroutines() {
						b.Run(goroutinesName(g), func(b *testing.B) {
							g := resolveGoroutines(g)
							if impl.SpinsFIFO && (g > runtime.GOMAXPROCS(0) || g > runtime.NumCPU()) {
								// Measured: one sample of 10,000 operations at
								// 8 goroutines on 2 cores took up to 10 s.
								b.Skip("ticket waiters spin in FIFO order: with more runnable goroutines than cores the next in line is usually descheduled, and the lock convoys; BenchmarkLockLatency measures it at 100 goroutines for a fixed time")
							}
							b.ReportAllocs()
							l := impl.New()
							acquire := func() (contend.Lease, error) { return l.Acquire(bg) }
							sink += runParallel(b, g, func(id, n int) int64 { return lockCycles(b, acquire, id, n, w.rounds) })
							reportPerSecond(b, float64(b.N), "ops/s")
						})
					}
				})
			}
		})
	}
}

// BenchmarkSemaphore measures every registered Semaphore's throughput, one
// permit of 4 per operation; see the top of the file. The racy control
// (naive) is skipped under -race.
func BenchmarkSemaphore(b *testing.B) {
	for _, w := range lockWorkloads {
		b.Run("workload="+w.name, func(b *testing.B) {
			for _, impl := range Semaphores() {
				if impl.Guarantee == Racy && raceflag.Enabled {
					continue
				}
				b.Run("impl="+impl.Name, func(b *testing.B) {
					for _, g := range benchGoroutines() {
						b.Run(goroutinesName(g), func(b *testing.B) {
							g := resolveGoroutines(g)
							b.ReportAllocs()
							s, err := impl.New(benchSemCapacity)
							if err != nil {
								b.Fatal(err)
							}
							acquire := func() (contend.Lease, error) { return s.Acquire(bg, 1) }
							sink += runParallel(b, g, func(id, n int) int64 { return lockCycles(b, acquire, id, n, w.rounds) })
							reportPerSecond(b, float64(b.N), "ops/s")
						})
					}
				})
			}
		})
	}
}

// BenchmarkLockLatency reports every registered Lock's Acquire latency
// percentiles and fairness with 100 goroutines, from RunLock runs of 50 ms
// each; see the top of the file. It fails on an overlap or token
// regression of a correct lock. The racy control is skipped under -race.
func BenchmarkLockLatency(b *testing.B) {
	for _, impl := range Locks() {
		if impl.Guarantee == Racy && raceflag.Enabled {
			continue
		}
		b.Run("impl="+impl.Name, func(b *testing.B) {
			// At -benchtime 1x the first sample of the first -cpu value is
			// the probe run that b.Run makes: set its GOMAXPROCS first.
			runFirstCPU(b, goroutinesName(contendtest.StressGoroutines), func(b *testing.B) {
				b.ReportAllocs()
				latency := contendtest.NewLatencyHistogram()
				per := make([]int64, contendtest.StressGoroutines)
				var acquisitions int64
				for range b.N {
					run, err := contendtest.RunLock(impl.New(), contendtest.StressGoroutines, latencyRun, contendtest.WorkRounds)
					if err != nil {
						b.Fatal(err)
					}
					if impl.Guarantee.Correct() && (run.Overlaps != 0 || run.TokenRegressions != 0) {
						b.Fatalf("%s: %d overlaps, %d token regressions", impl.Name, run.Overlaps, run.TokenRegressions)
					}
					latency.Merge(run.Latency)
					for g, n := range run.PerGoroutine {
						per[g] += n
					}
					acquisitions += run.Acquisitions
				}
				total := contendtest.LockRun{Latency: latency, PerGoroutine: per}
				b.ReportMetric(float64(total.P(0.50).Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(total.P(0.99).Nanoseconds()), "p99-ns")
				b.ReportMetric(float64(total.P(0.999).Nanoseconds()), "p999-ns")
				b.ReportMetric(total.JainFairness(), "jain-fairness")
				reportPerSecond(b, float64(acquisitions), "ops/s")
			})
		})
	}
}
