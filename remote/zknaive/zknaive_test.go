package zknaive_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/hangreport"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/internal/zkserver"
	"github.com/contend-lab/contend/remote/zklab"
	"github.com/contend-lab/contend/remote/zknaive"
)

const session = 5 * time.Second

// watches returns the server's count of watches (one per session and
// path watched).
func watches(t *testing.T, addr string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	kv, err := zkserver.Mntr(ctx, addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(kv["zk_watch_count"])
	require.NoError(t, err)
	return n
}

func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestNaive runs the control's tests on one server.
func TestNaive(t *testing.T) {
	cl := servertest.Start(t, zkserver.Backend, zkserver.Standalone)
	t.Run("a waiter leaving lets two hold", func(t *testing.T) { waiterLeavingLetsTwoHold(t, cl.Endpoints()) })
	t.Run("without leavers", func(t *testing.T) { withoutLeavers(t, cl.Endpoints()) })
}

// waiterLeavingLetsTwoHold makes the article's failure happen, step by
// step: A holds; B waits, watching A; C waits, watching B; B's ctx ends
// and B deletes its node. The naive C takes the watch's firing for the
// lock and holds while A does. The lab's C lists the queue again, watches
// A, and holds only once A releases.
func waiterLeavingLetsTwoHold(t *testing.T, eps []string) {
	addr := eps[0]
	for _, tc := range []struct {
		name   string
		newOn  func(c *zklab.Client, path string) (contend.Lock, error)
		broken bool
	}{
		{"zknaive", func(c *zklab.Client, p string) (contend.Lock, error) { return zknaive.NewLock(c, p) }, true},
		{"zklab", func(c *zklab.Client, p string) (contend.Lock, error) { return zklab.NewLock(c, p) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/naive-test/" + tc.name
			locks := make([]contend.Lock, 3) // A, B, C, a session each
			clients := make([]*zklab.Client, 3)
			for i := range locks {
				c, err := zklab.Dial(eps, session)
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				clients[i] = c
				locks[i], err = tc.newOn(c, path)
				require.NoError(t, err)
			}
			queue := func() int {
				kids, _, err := clients[0].Conn().Children(path)
				require.NoError(t, err)
				return len(kids)
			}
			require.Zero(t, watches(t, addr))
			ctx := within(t, time.Minute) // bounds the test: a hang fails it
			a, err := locks[0].Acquire(ctx)
			require.NoError(t, err)

			bctx, cancelB := context.WithCancel(ctx)
			bDone := make(chan error, 1)
			go func() {
				_, err := locks[1].Acquire(bctx)
				bDone <- err
			}()
			require.True(t, eventually(func() bool { return queue() == 2 && watches(t, addr) == 1 }), "B is not waiting on A")
			cGot := make(chan contend.Lease, 1)
			go func() {
				lease, err := locks[2].Acquire(ctx)
				assert.NoError(t, err)
				cGot <- lease
			}()
			require.True(t, eventually(func() bool { return queue() == 3 && watches(t, addr) == 2 }), "C is not waiting on B")

			cancelB()
			require.ErrorIs(t, <-bDone, context.Canceled)
			if tc.broken {
				var c contend.Lease
				select {
				case c = <-cGot:
				case <-time.After(5 * time.Second):
					t.Fatal("the naive C did not take the lock when B left")
				}
				require.NotNil(t, c)
				assert.NoError(t, a.Extend(ctx, time.Second), "A does not hold any more")
				t.Logf("two holders: A (token %d) and C (token %d)", a.Token(), c.Token())
				return
			}
			// The lab's C is back to watching A (B's old watch on A is
			// still counted): it has looked and decided to wait.
			require.True(t, eventually(func() bool { return queue() == 2 && watches(t, addr) == 2 }), "C is not waiting on A")
			select {
			case <-cGot:
				t.Fatal("C took the lock while A holds it")
			default:
			}
			require.NoError(t, a.Release(ctx))
			c := <-cGot
			require.NotNil(t, c)
			assert.Greater(t, c.Token(), a.Token())
			require.NoError(t, c.Release(ctx))
		})
	}
}

// withoutLeavers: with no waiter leaving the queue the naive lock keeps the
// contract's basics (its flaw needs a leaver), and bad input is refused.
func withoutLeavers(t *testing.T, eps []string) {
	l, err := zknaive.NewLockAt(eps, "naive-plain", session)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	ctx := within(t, time.Minute) // bounds the test: a hang fails it
	first, err := l.Acquire(ctx)
	require.NoError(t, err)
	_, err = l.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrHeld)
	require.NoError(t, first.Release(ctx))
	assert.ErrorIs(t, first.Release(ctx), contend.ErrNotHeld)
	assert.Positive(t, l.RoundTrips())

	var zero zknaive.Lock
	_, err = zero.Acquire(ctx)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zero.TryAcquire(ctx)
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zknaive.NewLock(nil, "/x")
	assert.ErrorIs(t, err, contend.ErrNotConstructed)
	_, err = zknaive.NewLockAt(eps, "a/b", session)
	assert.ErrorIs(t, err, zklab.ErrBadPath)
}

// within returns a context that ends after d or with the test.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestMain reports where a hung test waits before go test's timeout
// would (package hangreport).
func TestMain(m *testing.M) { os.Exit(hangreport.Run(m)) }
