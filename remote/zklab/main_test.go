package zklab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/hangreport"
	"github.com/contend-lab/contend/internal/zkserver"
	"github.com/contend-lab/contend/remote"
	"github.com/contend-lab/contend/remote/zklab"
	"github.com/contend-lab/contend/remote/zknaive"
	"github.com/contend-lab/contend/remote/zkref"
)

// The registry's shape: a lock or semaphore that closes its own session
// and counts its requests.
var (
	_ remote.RoundTripCounter = (*zklab.Client)(nil)
	_ interface {
		contend.Lock
		io.Closer
		remote.RoundTripCounter
	} = (*zklab.Lock)(nil)
	_ interface {
		contend.Semaphore
		io.Closer
		remote.RoundTripCounter
	} = (*zklab.Semaphore)(nil)
	_ interface {
		contend.Lock
		io.Closer
		remote.RoundTripCounter
	} = (*zknaive.Lock)(nil)
	_ interface {
		contend.Lock
		io.Closer
		remote.RoundTripCounter
	} = (*zkref.Lock)(nil)
)

// One standalone server serves every test that does not fail a server on
// purpose: a JVM costs a second to start. Each test uses its own paths.
var shared struct {
	once sync.Once
	c    *zkserver.Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := hangreport.Run(m)
	if shared.c != nil {
		shared.c.Stop()
	}
	os.Exit(code)
}

// standalone returns the shared server's endpoints, starting it on first
// use; it fails the test if ZooKeeper is missing, or skips it when
// CONTEND_SKIP_ZOOKEEPER=1.
func standalone(t testing.TB) []string {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.c, shared.err = zkserver.Start(ctx, zkserver.Standalone, zkserver.Options{})
	})
	skipOrFail(t, shared.err)
	return shared.c.Endpoints()
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, remote.ErrNotInstalled) && zkserver.Backend.Skipped() {
		t.Skipf("skipping: %v", err)
	}
	t.Fatalf("starting ZooKeeper: %v", err)
}

var pathSeq atomic.Int64

// newPath returns a path no other test uses.
func newPath(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/test/%s-%d", name, pathSeq.Add(1))
}

// dial returns a client of endpoints with a session of timeout, closed
// when the test ends.
func dial(t testing.TB, endpoints []string, timeout time.Duration) *zklab.Client {
	t.Helper()
	c, err := zklab.Dial(endpoints, timeout)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// children returns the names under path, read with client c.
func children(t testing.TB, c *zklab.Client, path string) []string {
	t.Helper()
	kids, _, err := c.Conn().Children(path)
	require.NoError(t, err)
	return kids
}

// within returns a context that ends after d or with the test.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// done returns a context that has ended.
func done() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// eventually polls cond every 5 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
