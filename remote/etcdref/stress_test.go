package etcdref_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/harness"
	"github.com/contend-lab/contend/internal/etcdclient"
	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
	"github.com/contend-lab/contend/remote/etcdref"
)

// The uniform constructor the registry calls, and what its value is.
var (
	_ func([]string, string, time.Duration) (*etcdref.Lock, error) = etcdref.NewLockAt
	_ interface {
		contend.Lock
		remote.RoundTripCounter
		Close() error
	} = (*etcdref.Lock)(nil)
)

// TestStress runs the harness's lock stress check on the reference: no
// two holders, tokens only grow, and nothing left queued afterwards.
func TestStress(t *testing.T) {
	cl := servertest.Start(t, etcdserver.Backend, etcdserver.Single)
	l, err := etcdref.NewLockAt(cl.Endpoints(), "stress", harness.RemoteLease)
	require.NoError(t, err)
	run, err := contendtest.RunLock(l, 50, 1500*time.Millisecond, contendtest.WorkRounds)
	require.NoError(t, err)
	t.Logf("%d acquisitions in %v, p50 %v p99 %v, fairness %.2f, %.1f requests per acquisition",
		run.Acquisitions, run.Elapsed.Round(time.Millisecond), run.P(0.5), run.P(0.99), run.JainFairness(),
		float64(l.RoundTrips())/float64(max(1, run.Acquisitions)))
	assert.Positive(t, run.Acquisitions)
	assert.Zero(t, run.Overlaps, "two holders at once")
	assert.Zero(t, run.TokenRegressions, "a token did not grow")
	require.NoError(t, l.Close()) // revokes the sessions of the waiters cut off at the end
	raw, _, err := etcdclient.New(cl.Endpoints())
	require.NoError(t, err)
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := raw.Get(ctx, "stress/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, resp.Count, "keys left queued after Close")
}
