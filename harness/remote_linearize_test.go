package harness

import (
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/linearize"
)

// Sizes of the remote histories: a round trip costs about a thousand
// times an in-process operation, so fewer clients and rounds, and the
// histories still overlap on every Acquire.
const (
	remoteHistories = 3
	remoteClients   = 6
	remoteRounds    = 4
)

// TestRemoteLinearizable records short histories of Acquire, TryAcquire
// and Release by remoteClients clients on every correct remote lock and
// semaphore, on every deployment it runs on, and checks them with the
// lock and semaphore models (unfenced for those without fencing tokens).
// The broken semaphore's histories must show it: one is recorded until it
// is Illegal, within a bounded time.
func TestRemoteLinearizable(t *testing.T) {
	cs := newClusters(t)
	semModel := func(noFencing bool) porcupine.Model {
		m, err := linearize.NewSemaphore(semCapacity)
		if noFencing {
			m, err = linearize.NewUnfencedSemaphore(semCapacity)
		}
		require.NoError(t, err)
		return m
	}
	check := func(t *testing.T, family string, impl RemoteImpl, dep string, model porcupine.Model, record func(key string) []porcupine.Operation) {
		sum := linearize.Summary{Family: impl.Backend + " " + family, Impl: impl.Name, Scenario: "stress, " + dep}
		if !impl.Guarantee.Correct() {
			sum.Scenario = "control, " + dep
			for try := 0; try < 20 && sum.Verdict != porcupine.Illegal; try++ {
				checkHistoryWithin(t, &sum, model, record(fmt.Sprintf("%d", try)), 10*time.Second)
			}
			report(t, sum)
			assert.Equal(t, porcupine.Illegal, sum.Verdict, "%s %s: no history of the control in %d was found not linearizable", family, impl.Name, sum.Histories)
			return
		}
		for i := range remoteHistories * contendtest.StressScale() {
			checkHistory(t, &sum, model, record(fmt.Sprintf("%d", i)))
		}
		report(t, sum)
		assertLinearizable(t, sum)
	}
	for _, impl := range RemoteLocks() {
		if !impl.Guarantee.Correct() {
			continue // the broken locks' histories are checked under the faults that break them
		}
		for _, dep := range impl.Deployments {
			t.Run("lock/"+impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
				c := cs.get(impl.Backend, dep)
				check(t, "lock", impl.RemoteImpl, dep, lockModel(impl.NoFencing, impl.WeakTryAcquire != ""), func(key string) []porcupine.Operation {
					inst, err := impl.New(c, "lin:lock:"+impl.Name+":"+key, RemoteLease)
					require.NoError(t, err)
					defer inst.Close()
					record := contendtest.RecordLock
					if impl.NoFencing {
						record = contendtest.RecordUnfencedLock
					}
					h, err := record(inst.Impl, remoteClients, remoteRounds)
					require.NoError(t, err)
					return h
				})
			})
		}
	}
	for _, impl := range RemoteSemaphores() {
		for _, dep := range impl.Deployments {
			t.Run("semaphore/"+impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
				c := cs.get(impl.Backend, dep)
				check(t, "semaphore", impl.RemoteImpl, dep, semModel(impl.NoFencing), func(key string) []porcupine.Operation {
					inst, err := impl.New(c, "lin:sem:"+impl.Name+":"+key, semCapacity, RemoteLease)
					require.NoError(t, err)
					defer inst.Close()
					record := contendtest.RecordSemaphore
					if impl.NoFencing {
						record = contendtest.RecordUnfencedSemaphore
					}
					h, err := record(inst.Impl, remoteClients, remoteRounds, stressPermits)
					require.NoError(t, err)
					return h
				})
			})
		}
	}
}
