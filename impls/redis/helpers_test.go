package redislab

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/redis/go-redis/v9"
)

// quiet drops go-redis's log lines: the failure tests make it log every
// refused dial, which buries the test output.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

// newServers starts n redis-servers for t and returns a client for each,
// closed at the end of the test.
func newServers(t testing.TB, n int) ([]*redisserver.Server, []*redis.Client) {
	t.Helper()
	servers := redisserver.StartT(t, n)
	clients := make([]*redis.Client, n)
	for i, s := range servers {
		clients[i] = NewClient(s.Addr())
		t.Cleanup(func() { _ = clients[i].Close() })
	}
	return servers, clients
}

func newServer(t testing.TB) (*redisserver.Server, *redis.Client) {
	s, c := newServers(t, 1)
	return s[0], c[0]
}

// within fails t if f takes longer than d to return.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
	t.Logf("%s took %v", what, time.Since(start).Round(time.Millisecond))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
