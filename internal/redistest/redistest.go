// Package redistest holds what the Redis packages' tests share: servers
// with clients, a bounded wait, and a bucket load generator.
package redistest

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
	"github.com/redis/go-redis/v9"
)

// quiet drops go-redis's log lines: the failure tests make it log every
// refused dial, which buries the test output.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Main is a TestMain that silences go-redis's logger and runs the tests.
func Main(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

// Servers starts n redis-servers for t and returns a client for each,
// closed at the end of the test.
func Servers(t testing.TB, n int) ([]*redisserver.Server, []*redis.Client) {
	t.Helper()
	servers := Start(t, n)
	clients := make([]*redis.Client, n)
	for i, s := range servers {
		clients[i] = redisx.NewClient(s.Addr())
		t.Cleanup(func() { _ = clients[i].Close() })
	}
	return servers, clients
}

// Server starts one redis-server and returns it with a client.
func Server(t testing.TB) (*redisserver.Server, *redis.Client) {
	s, c := Servers(t, 1)
	return s[0], c[0]
}

// Within fails t if f takes longer than d to return.
func Within(t *testing.T, d time.Duration, what string, f func()) {
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

// Ctx returns a context that ends after d or with t.
func Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// BucketLoad is what LoadBucket measured.
type BucketLoad struct {
	Granted, Denied, Errs int64
	Elapsed               time.Duration
	Supply                float64 // capacity + rate × elapsed
}

// LoadBucket asks b for one token at a time from 20 goroutines for 300 ms
// (failing t if that takes over 2 s) and returns what it granted, against
// capacity + rate × elapsed for cfg. The servers decide on their wall clock
// (TIME), so elapsed is taken on the wall clock too (Round(0) drops the
// monotonic reading).
func LoadBucket(t *testing.T, b interface {
	TryTakeContext(context.Context, int64) (bool, error)
}, cfg contend.BucketConfig) BucketLoad {
	t.Helper()
	var granted, denied, errs atomic.Int64
	start := time.Now().Round(0)
	Within(t, 2*time.Second, "20 goroutines for 300 ms", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for ctx.Err() == nil {
					ok, err := b.TryTakeContext(context.Background(), 1)
					switch {
					case err != nil:
						errs.Add(1)
					case ok:
						granted.Add(1)
					default:
						denied.Add(1)
					}
				}
			})
		}
		wg.Wait()
	})
	elapsed := time.Now().Round(0).Sub(start)
	l := BucketLoad{Granted: granted.Load(), Denied: denied.Load(), Errs: errs.Load(), Elapsed: elapsed,
		Supply: float64(cfg.Capacity) + cfg.Rate*elapsed.Seconds()}
	t.Logf("granted %d, denied %d, errors %d in %v: bound %.1f, %.1f%% of it",
		l.Granted, l.Denied, l.Errs, l.Elapsed, l.Supply, 100*float64(l.Granted)/l.Supply)
	return l
}

// Start starts n independent redis-servers for t, stopped when t ends.
func Start(t testing.TB, n int) []*redisserver.Server {
	t.Helper()
	d := redisserver.Single
	if n > 1 {
		d = remote.Deployment{Name: "independent", Topology: remote.Independent, Servers: n}
	}
	var servers []*redisserver.Server
	for _, node := range servertest.Start(t, redisserver.Backend, d).Nodes() {
		servers = append(servers, node.(*redisserver.Server))
	}
	return servers
}
