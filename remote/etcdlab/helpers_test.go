package etcdlab

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/contend-lab/contend/internal/etcdclient"
	"github.com/contend-lab/contend/internal/etcdserver"
	"github.com/contend-lab/contend/internal/hangreport"
	"github.com/contend-lab/contend/internal/servertest"
)

var bg = context.Background()

// waitLimit bounds the tests' Acquires, so that a broken lock fails the test
// instead of hanging it.
const waitLimit = 10 * time.Second

// startSingle starts one etcd member for t, stopped when t ends.
func startSingle(t *testing.T) *etcdserver.Cluster {
	t.Helper()
	return servertest.Start(t, etcdserver.Backend, etcdserver.Single).(*etcdserver.Cluster)
}

// newTestClient returns a Client of eps with leases of ttl, closed when t
// ends.
func newTestClient(t *testing.T, eps []string, ttl time.Duration, extra ...grpc.DialOption) *Client {
	t.Helper()
	c, err := newClient(eps, ttl, extra...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// watchOnly turns c's fallback re-read off, so that a waiter is woken only
// by the watch: tests of wake-ups use it, or a missed wake-up would pass as
// a slow one.
func watchOnly(c *Client) *Client {
	c.recheck = time.Hour
	return c
}

// rawClient returns a plain etcd client of eps for the test to look at and
// tamper with the keys, closed when t ends.
func rawClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, _, err := etcdclient.New(eps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// queued returns the keys in the queue of the lock or semaphore on prefix.
func queued(t *testing.T, cli *clientv3.Client, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// settle waits for c's clean-ups, failing t after 10 s.
func settle(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	require.NoError(t, c.Settle(ctx))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, d)
	t.Cleanup(cancel)
	return ctx
}

// result is what a background Acquire returned.
type result struct {
	lease *Lease
	err   error
}

// acquireAsync runs acquire in the background and returns its outcome on
// a channel.
func acquireAsync(acquire func() (*Lease, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		l, err := acquire()
		ch <- result{l, err}
	}()
	return ch
}

// lockAsync is acquireAsync for l.Acquire(ctx).
func lockAsync(ctx context.Context, l *Lock) <-chan result {
	return acquireAsync(func() (*Lease, error) {
		lease, err := l.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return lease.(*Lease), nil
	})
}

// pending fails t if ch has a result within d: the Acquire should still be
// waiting.
func pending(t *testing.T, ch <-chan result, d time.Duration, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned while it should wait: lease %v, err %v", what, r.lease, r.err)
	case <-time.After(d):
	}
}

// within returns ch's result, failing t if there is none within d.
func within(t *testing.T, ch <-chan result, d time.Duration, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return result{}
	}
}

// waitQueued waits until the queue on prefix holds n keys.
func waitQueued(t *testing.T, cli *clientv3.Client, prefix string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(queued(t, cli, prefix)) != n {
		require.True(t, time.Now().Before(deadline), "the queue on %s never reached %d keys: %v", prefix, n, queued(t, cli, prefix))
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMain reports where a hung test waits before go test's timeout
// would (package hangreport).
func TestMain(m *testing.M) { os.Exit(hangreport.Run(m)) }
