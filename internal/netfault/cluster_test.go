package netfault

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

// redisClient is a go-redis client for addr that does not retry, so that a
// test sees each fault's error instead of go-redis's recovery from it. It
// speaks RESP2: over RESP3, go-redis peeks at the socket for push
// notifications before it reads a reply, the peek takes the socket's
// ECONNRESET, and the read that follows returns io.EOF.
func redisClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           250 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		MaxRetries:            -1,
		Protocol:              2,
		PoolSize:              2,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// within returns a context that ends after d or with the test.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestWrapNilCluster(t *testing.T) {
	v, ps, err := Wrap(nil)
	assert.Error(t, err)
	assert.Nil(t, v)
	assert.Nil(t, ps)
}

// TestRedisFaultsOnOneClientsPath runs every fault against real
// redis-servers: client a goes through its own proxies, client b through
// others, and only a's path is faulted.
func TestRedisFaultsOnOneClientsPath(t *testing.T) {
	c := servertest.Start(t, redisserver.Backend, redisserver.Independent3)
	va, pa, err := Wrap(c)
	require.NoError(t, err)
	vb, pb, err := Wrap(c)
	require.NoError(t, err)

	// The views: proxies in node order, node faults on the real servers.
	require.Len(t, pa, 3)
	assert.Equal(t, c.Backend(), va.Backend())
	assert.Equal(t, c.Deployment(), va.Deployment())
	for i, n := range va.Nodes() {
		assert.Equal(t, c.Endpoints()[i], pa[i].Target())
		assert.Equal(t, pa[i].Addr(), n.Addr())
		assert.Equal(t, pa[i].Addr(), va.Endpoints()[i])
		assert.NotEqual(t, pb[i].Addr(), pa[i].Addr())
	}
	_, err = va.Leader(context.Background())
	assert.Error(t, err, "Leader is the cluster's")

	a := redisClient(t, va.Endpoints()[0])
	a1 := redisClient(t, va.Endpoints()[1])
	b := redisClient(t, vb.Endpoints()[0])
	ctx := within(t, 10*time.Second)
	require.NoError(t, a.Ping(ctx).Err())
	require.NoError(t, b.Ping(ctx).Err())

	t.Run("partition", func(t *testing.T) {
		pa[0].Partition()
		err := a.Incr(within(t, 300*time.Millisecond), "cut").Err()
		assert.True(t, errors.Is(err, context.DeadlineExceeded) || isTimeout(err), "INCR through the cut: %v, want a timeout", err)
		assert.Equal(t, int64(1), b.Incr(ctx, "cut").Val(), "another client's INCR through its own path")
		assert.NoError(t, a1.Ping(ctx).Err(), "a's path to another server was cut too")
		// The INCR that a gave up on is held, not lost: after the heal it
		// runs, as a retransmitted request would.
		pa[0].Heal()
		assert.True(t, eventually(2*time.Second, func() bool { return b.Get(ctx, "cut").Val() == "2" }),
			"the INCR held by the cut did not run after the heal")
		assert.Equal(t, int64(3), a.Incr(ctx, "cut").Val(), "a's INCR after the heal")
	})

	t.Run("latency", func(t *testing.T) {
		const d = 50 * time.Millisecond
		require.NoError(t, pa[0].SetLatency(d, d))
		start := time.Now()
		require.NoError(t, a.Ping(ctx).Err())
		assert.GreaterOrEqual(t, time.Since(start), 2*d)
		require.NoError(t, pa[0].SetLatency(0, 0))
	})

	t.Run("reset-request", func(t *testing.T) {
		require.NoError(t, a.Ping(ctx).Err(), "a connection whose handshake is done")
		pa[0].ResetNextRequest()
		err := a.Incr(ctx, "req").Err()
		assert.True(t, errors.Is(err, syscall.ECONNRESET), "INCR with its request reset: %v, want ECONNRESET", err)
		assert.ErrorIs(t, b.Get(ctx, "req").Err(), redis.Nil, "the reset request ran")
	})

	t.Run("reset-response", func(t *testing.T) {
		// After the last reset a's pool must dial again, and the reply to
		// its handshake would be the next response: get it over with.
		require.NoError(t, a.Ping(ctx).Err())
		pa[0].ResetNextResponse()
		err := a.Incr(ctx, "resp").Err()
		assert.True(t, errors.Is(err, syscall.ECONNRESET), "INCR with its response reset: %v, want ECONNRESET", err)
		assert.Equal(t, "1", b.Get(ctx, "resp").Val(), "the request whose response was reset did not run")
		assert.Equal(t, int64(2), a.Incr(ctx, "resp").Val(), "a's INCR after the reset")
	})

	t.Run("node-faults-hit-the-server", func(t *testing.T) {
		require.NoError(t, va.Nodes()[2].Pause())
		err := redisserver.Ping(within(t, 150*time.Millisecond), c.Endpoints()[2])
		assert.Error(t, err, "a server paused through the view still answers")
		require.NoError(t, va.Nodes()[2].Resume())
		assert.NoError(t, va.Nodes()[2].Serving(ctx))
	})

	t.Run("stop-closes-only-the-view", func(t *testing.T) {
		va.Stop()
		va.Stop()
		assert.Error(t, a.Ping(within(t, 300*time.Millisecond)).Err(), "a client of a stopped view still reaches the server")
		assert.NoError(t, b.Ping(ctx).Err())
		assert.NoError(t, c.Nodes()[0].Serving(ctx))
		vb.Stop()
		requireNoGoroutinesLeft(t)
	})
}

// fakeCluster is a cluster whose nodes are only addresses.
type fakeCluster struct {
	remote.Cluster // nil: only Nodes and Backend are called
	addrs          []string
}

type fakeNode struct {
	remote.Node
	addr string
}

func (n fakeNode) Addr() string { return n.addr }

func (c fakeCluster) Backend() string { return "fake" }

func (c fakeCluster) Nodes() []remote.Node {
	ns := make([]remote.Node, len(c.addrs))
	for i, a := range c.addrs {
		ns[i] = fakeNode{addr: a}
	}
	return ns
}

func TestWrapFailsCleanly(t *testing.T) {
	v, ps, err := Wrap(fakeCluster{addrs: []string{"127.0.0.1:1", "no-port"}})
	assert.ErrorContains(t, err, "fake node 1")
	assert.Nil(t, v)
	assert.Nil(t, ps)
	requireNoGoroutinesLeft(t) // the proxy to node 0 was closed
}
