package harness

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

// clusters starts each backend deployment a test needs once, and stops
// them all when the test ends.
type clusters struct {
	t       testing.TB
	started map[[2]string]remote.Cluster
}

func newClusters(t testing.TB) *clusters {
	return &clusters{t: t, started: map[[2]string]remote.Cluster{}}
}

// get returns the running deployment named deployment of backend,
// starting it on first use.
func (cs *clusters) get(backend, deployment string) remote.Cluster {
	cs.t.Helper()
	k := [2]string{backend, deployment}
	if c, ok := cs.started[k]; ok {
		return c
	}
	b, ok := BackendByName(backend)
	require.True(cs.t, ok, "no backend %q", backend)
	c := servertest.StartNamed(cs.t, b, deployment)
	cs.started[k] = c
	return c
}

// closeWith closes an instance's clients when t ends.
func closeWith[T any](t testing.TB, inst Instance[T]) T {
	t.Cleanup(func() { _ = inst.Close() })
	return inst.Impl
}

// remoteRun is how long each remote stress run lasts: enough for thousands
// of round trips on loopback, and for a ZooKeeper session, which answers
// its requests in order, to reach its first grant with 100 contenders;
// short enough for make test.
const remoteRun = 2 * time.Second

// TestRemoteLocks runs every server-backed lock, on every deployment it
// runs on, through RunLock, the same exclusion checker the in-process locks
// face, with 100 goroutines.
func TestRemoteLocks(t *testing.T) {
	cs := newClusters(t)
	for _, impl := range RemoteLocks() {
		for _, dep := range impl.Deployments {
			t.Run(impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
				c := cs.get(impl.Backend, dep)
				key := fmt.Sprintf("harness:lock:%s:%s", dep, impl.Name)
				inst, err := impl.New(c, key, RemoteLease)
				require.NoError(t, err)
				l := closeWith(t, inst)
				run, err := contendtest.RunLock(l, contendtest.StressGoroutines, remoteRun, contendtest.WorkRounds)
				t.Logf("%d acquisitions by %d goroutines in %v, %d overlaps, %d token regressions, p99 %v, Jain %.2f",
					run.Acquisitions, run.Goroutines, run.Elapsed, run.Overlaps, run.TokenRegressions, run.P(0.99), run.JainFairness())
				if !impl.Guarantee.Correct() {
					// A control's failure is a crash or a fault, shown by its
					// own package and the fault scenarios; under 100 pollers
					// its plain commands may also time out.
					t.Logf("control: %v", err)
					return
				}
				require.NoError(t, err)
				if run.Acquisitions == 0 && c.Deployment().Topology == remote.Independent {
					// Redlock under 100-way contention can split every vote:
					// each contender wins some nodes, none a quorum, all back
					// off and try again, sometimes for a whole run. Safety
					// still held (no overlap); show liveness with fewer
					// contenders, on a fresh key (contenders whose contexts
					// ended mid-vote leave holds on some nodes until their
					// TTL).
					t.Logf("no quorum won by 100 contenders in %v (split votes); retrying with 10", run.Elapsed)
					assert.Zero(t, run.Overlaps, "two holders at once")
					inst, err = impl.New(c, key+":10", RemoteLease)
					require.NoError(t, err)
					l = closeWith(t, inst)
					run, err = contendtest.RunLock(l, 10, remoteRun, contendtest.WorkRounds)
					require.NoError(t, err)
					t.Logf("10 goroutines: %d acquisitions, %d overlaps, %d token regressions", run.Acquisitions, run.Overlaps, run.TokenRegressions)
				}
				assert.Positive(t, run.Acquisitions, "the lock was never acquired")
				assert.Zero(t, run.Overlaps, "two holders at once")
				if !impl.NoFencing {
					assert.Zero(t, run.TokenRegressions, "a fencing token did not grow")
				}
			})
		}
	}
}

// TestRemoteSemaphores runs every server-backed semaphore through
// RunSemaphore: correct ones never exceed capacity, and the naive control
// is shown over-admitting.
func TestRemoteSemaphores(t *testing.T) {
	cs := newClusters(t)
	const capacity = 4
	for _, impl := range RemoteSemaphores() {
		for _, dep := range impl.Deployments {
			t.Run(impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
				c := cs.get(impl.Backend, dep)
				var run contendtest.SemaphoreRun
				for try := 1; try <= 5; try++ {
					inst, err := impl.New(c, fmt.Sprintf("harness:sem:%s:%s:%d", dep, impl.Name, try), capacity, RemoteLease)
					require.NoError(t, err)
					s := closeWith(t, inst)
					run, err = contendtest.RunSemaphore(s, 50, remoteRun, func(int) int64 { return 1 })
					require.NoError(t, err)
					t.Logf("%d acquisitions, at most %d of %d permits held, %d overflows",
						run.Acquisitions, run.MaxHeld, capacity, run.Overflows)
					if impl.Guarantee.Correct() || run.Overflows > 0 {
						break
					}
				}
				if impl.Guarantee.Correct() {
					assert.Positive(t, run.Acquisitions)
					assert.Zero(t, run.Overflows, "more than %d permits held", capacity)
					assert.LessOrEqual(t, run.MaxHeld, int64(capacity))
				} else {
					assert.Positive(t, run.Overflows, "the naive semaphore never over-admitted in 5 runs")
				}
			})
		}
	}
}

// TestRemoteBuckets runs every server-backed bucket through RunBucket and
// CheckBucketRun. The bucket's time is the server's; the run's elapsed time
// is measured locally around every call, so it contains the server's
// interval, and Capacity + Rate × elapsed is a bound for both.
func TestRemoteBuckets(t *testing.T) {
	cs := newClusters(t)
	// 2000 tokens/s: 20 goroutines at ~30 µs per round trip ask for far more.
	cfg := contend.BucketConfig{Capacity: 100, Rate: 2000}
	for _, impl := range RemoteBuckets() {
		for _, dep := range impl.Deployments {
			t.Run(impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
				c := cs.get(impl.Backend, dep)
				n := 0
				newBucket := func(cfg contend.BucketConfig) (contend.Bucket, error) {
					n++
					inst, err := impl.New(c, fmt.Sprintf("harness:bucket:%s:%s:%d", dep, impl.Name, n), cfg)
					if err != nil {
						return nil, err
					}
					return closeWith(t, inst), nil
				}
				run, err := contendtest.RunBucket(newBucket, cfg, 20, remoteRun)
				require.NoError(t, err)
				t.Logf("%d attempts, %d of %d tokens requested granted; allowed %d, supply %d (busy %v of %v)",
					run.Attempts, run.Granted, run.Requests, run.Allowed, run.Supply, run.Busy, run.Elapsed)
				require.True(t, run.DemandExceededSupply(), "demand must exceed supply for the lower bound to mean anything")
				if impl.Guarantee.Correct() {
					assert.NoError(t, contendtest.CheckBucketRun(run, cfg, 0))
				}
			})
		}
	}
}
