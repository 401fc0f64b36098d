package zkserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

// processesUsing returns the pids of the processes whose command line
// mentions dir: the JVMs of a cluster's servers, found without asking the
// cluster.
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc to look for processes in: %v", err)
	}
	var pids []string
	for _, e := range entries {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte(dir)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// requireGone checks that c's servers' processes and directories are gone.
func requireGone(t *testing.T, c *Cluster) {
	t.Helper()
	for _, s := range c.Servers() {
		assert.Empty(t, processesUsing(t, s.dir), "a server of the stopped cluster still runs")
		_, err := os.Stat(s.dir)
		assert.True(t, errors.Is(err, os.ErrNotExist), "the data directory %s is left behind (%v)", s.dir, err)
	}
}

func modeWithin(addr string, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Mode(ctx, addr)
}

// within returns a context that ends after d or with the test.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, endpoints []string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect(endpoints, 2*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	return conn
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func TestBackend(t *testing.T) {
	v, err := Backend.Version()
	if errors.Is(err, remote.ErrNotInstalled) && Backend.Skipped() {
		t.Skip(err)
	}
	require.NoError(t, err)
	assert.Regexp(t, `^zookeeper 3\.\d+\.\d+$`, v)
	assert.Equal(t, "zookeeper", Backend.Name)
	assert.True(t, Backend.RestartKeepsData)
	for _, name := range []string{"standalone", "ensemble3"} {
		_, ok := Backend.Deployment(name)
		assert.True(t, ok, "no deployment %q", name)
	}
}

// TestStandaloneFaults walks one standalone server through every fault hook
// and checks that its data survives a restart and nothing survives Stop.
func TestStandaloneFaults(t *testing.T) {
	rc := servertest.Start(t, Backend, Standalone)
	c := rc.(*Cluster)
	s := c.Servers()[0]
	require.Equal(t, []string{s.Addr()}, c.Endpoints())
	mode, err := modeWithin(s.Addr(), time.Second)
	require.NoError(t, err)
	assert.Equal(t, "standalone", mode)
	_, err = c.Leader(within(t, time.Second))
	assert.ErrorIs(t, err, remote.ErrNoLeader)

	conn := connect(t, c.Endpoints())
	_, err = conn.Create("/kept", []byte("across restarts"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	_, before, err := conn.Get("/kept")
	require.NoError(t, err)

	// Paused: the kernel accepts, nobody answers.
	require.NoError(t, s.Pause())
	start := time.Now()
	_, err = modeWithin(s.Addr(), 200*time.Millisecond)
	assert.Error(t, err, "a paused server answered srvr")
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Error(t, s.Serving(within(t, 200*time.Millisecond)))
	require.NoError(t, s.Resume())
	assert.NoError(t, s.Serving(within(t, 2*time.Second)))

	// Killed: refused, and its hooks say so.
	require.NoError(t, s.Kill())
	require.NoError(t, s.Kill(), "Kill is idempotent")
	_, err = net.DialTimeout("tcp", s.Addr(), time.Second)
	assert.Error(t, err, "dialled a killed server")
	assert.Error(t, s.Pause(), "Pause of a killed server")
	assert.Empty(t, processesUsing(t, s.dir), "the killed JVM still runs")

	// Restarted: same port, same data, zxids continue.
	require.NoError(t, s.Restart(within(t, 30*time.Second)))
	assert.Equal(t, c.Endpoints()[0], s.Addr())
	data, after, err := connect(t, c.Endpoints()).Get("/kept")
	require.NoError(t, err, "the znode did not survive the restart")
	assert.Equal(t, "across restarts", string(data))
	assert.Equal(t, before.Czxid, after.Czxid)
	created, err := connect(t, c.Endpoints()).Create("/after", nil, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	_, st, err := connect(t, c.Endpoints()).Exists(created)
	require.NoError(t, err)
	assert.Greater(t, st.Czxid, before.Czxid, "zxids went back after a restart")
	assert.Contains(t, s.Output(), "ZooKeeper", "Output does not show the server's log")

	// A paused server is stopped promptly, and nothing is left.
	require.NoError(t, s.Pause())
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop of a paused server hangs")
	}
	c.Stop() // idempotent
	requireGone(t, c)
	assert.ErrorIs(t, s.Resume(), ErrStopped)
	assert.ErrorIs(t, s.Restart(within(t, time.Second)), ErrStopped)
	assert.Error(t, s.Serving(within(t, 200*time.Millisecond)))
}

// TestEnsemble starts three members, finds the leader, kills it, finds the
// new one, kills that too (no quorum: no leader, nobody serves), and
// brings the first back.
func TestEnsemble(t *testing.T) {
	rc := servertest.Start(t, Backend, Ensemble3)
	c := rc.(*Cluster)
	require.Len(t, c.Nodes(), 3)
	eps := c.Endpoints()
	for i, n := range c.Nodes() {
		assert.Equal(t, eps[i], n.Addr())
		assert.NoError(t, n.Serving(within(t, 2*time.Second)))
	}
	leader, err := c.Leader(within(t, 2*time.Second))
	require.NoError(t, err)
	followers := 0
	for i, s := range c.Servers() {
		mode, err := modeWithin(s.Addr(), 2*time.Second)
		require.NoError(t, err)
		if i != leader {
			assert.Equal(t, "follower", mode)
			followers++
		}
	}
	assert.Equal(t, 2, followers)

	conn := connect(t, eps)
	_, err = conn.Create("/replicated", []byte("x"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	require.NoError(t, c.Nodes()[leader].Kill())
	start := time.Now()
	var next int
	for {
		next, err = c.Leader(within(t, 500*time.Millisecond))
		if err == nil || time.Since(start) > 20*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err, "no new leader after the old one was killed")
	assert.NotEqual(t, leader, next)
	t.Logf("new leader %d of 3 after %v", next+1, time.Since(start))
	_, _, err = conn.Get("/replicated") // the client fails over
	assert.NoError(t, err)

	// Kill the new leader too: the last member has no quorum and stops
	// serving. Restarting the first brings a quorum back.
	t0 := time.Now()
	require.NoError(t, c.Nodes()[next].Kill())
	last := 3 - leader - next
	assert.True(t, eventuallyErr(10*time.Second, func() error { return c.Nodes()[last].Serving(within(t, 500*time.Millisecond)) }),
		"a member without a quorum still serves")
	t.Logf("the last member stopped serving after %v", time.Since(t0))
	_, err = c.Leader(within(t, time.Second))
	assert.ErrorIs(t, err, remote.ErrNoLeader)
	old := c.Nodes()[leader]
	t0 = time.Now()
	require.NoError(t, old.Restart(within(t, 30*time.Second)))
	t.Logf("restarted, with a quorum, after %v", time.Since(t0))
	assert.NoError(t, c.Nodes()[last].Serving(within(t, 10*time.Second)))
	now, err := c.Leader(within(t, 2*time.Second))
	require.NoError(t, err)
	assert.Contains(t, []int{leader, last}, now)
	data, _, err := conn.Get("/replicated")
	require.NoError(t, err, "the data did not survive")
	assert.Equal(t, "x", string(data))

	c.Stop()
	requireGone(t, c)
	_, err = c.Leader(within(t, 500*time.Millisecond))
	assert.ErrorIs(t, err, remote.ErrNoLeader)
}

// eventuallyErr polls f until it returns an error or d passes, and reports
// whether it did.
func eventuallyErr(d time.Duration, f func() error) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if f() != nil {
			return true
		}
	}
	return false
}

func TestMissingInstall(t *testing.T) {
	for _, opts := range []Options{
		{Java: "/nonexistent/java"},
		{JarDir: t.TempDir()},
	} {
		_, err := Start(context.Background(), Standalone, opts)
		require.ErrorIs(t, err, ErrNotInstalled)
		assert.ErrorIs(t, err, remote.ErrNotInstalled)
		assert.Contains(t, err.Error(), Install, "the error does not say how to install ZooKeeper")
		_, err = opts.Version()
		assert.ErrorIs(t, err, remote.ErrNotInstalled)
	}
}

func TestBadDeployments(t *testing.T) {
	for _, d := range []remote.Deployment{
		{Name: "none", Topology: remote.Standalone, Servers: 0},
		{Name: "two-standalone", Topology: remote.Standalone, Servers: 2},
		{Name: "independent", Topology: remote.Independent, Servers: 3},
	} {
		_, err := Start(context.Background(), d, Options{})
		assert.Error(t, err, d.Name)
		assert.Contains(t, err.Error(), d.Name)
	}
}

// TestStartFailsClearly: a "java" that exits at once makes Start fail with
// its output, and leaves no directory behind.
func TestStartFailsClearly(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "java")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho 'fake: no JVM here' >&2\nexit 3\n"), 0o755))
	before, _ := filepath.Glob("/dev/shm/contend-zk-*")
	_, err := Start(context.Background(), Standalone, Options{Java: fake, StartTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "no JVM here"), "the error does not show the server's output: %v", err)
	after, _ := filepath.Glob("/dev/shm/contend-zk-*")
	assert.Subset(t, before, after, "a failed start left its directory behind")
}

// TestProbes: mntr's counters, and a Serving probe that tells this server
// from another one that took its port.
func TestProbes(t *testing.T) {
	c := servertest.Start(t, Backend, Standalone)
	real := c.Nodes()[0].(*Server)
	impostor := &Server{dir: t.TempDir(), port: real.port} // another server's view of the port
	assert.NoError(t, real.Serving(within(t, 2*time.Second)))
	err := impostor.Serving(within(t, 2*time.Second))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "answers for another server")

	kv, err := Mntr(within(t, 2*time.Second), c.Endpoints()[0])
	require.NoError(t, err)
	assert.Equal(t, "standalone", kv["zk_server_state"])
	assert.Equal(t, "0", kv["zk_watch_count"])
	conn := connect(t, c.Endpoints())
	_, _, _, err = conn.ExistsW("/watched")
	require.NoError(t, err)
	kv, err = Mntr(within(t, 2*time.Second), c.Endpoints()[0])
	require.NoError(t, err)
	assert.Equal(t, "1", kv["zk_watch_count"])
}

// TestSweep: a directory left by a test process that died is removed when
// the next cluster starts; one whose owner runs, or that has no owner yet,
// is kept.
func TestSweep(t *testing.T) {
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = os.TempDir()
	}
	mk := func(owner string) string {
		d, err := os.MkdirTemp(base, dirPrefix)
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		if owner != "" {
			require.NoError(t, os.WriteFile(filepath.Join(d, "owner"), []byte(owner), 0o644))
		}
		return d
	}
	// A pid that ran and exited: a finished child's.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	dead := mk(strconv.Itoa(cmd.Process.Pid))
	mine := mk(strconv.Itoa(os.Getpid()))
	making := mk("")
	d, err := dataDir()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	_, err = os.Stat(dead)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the dead owner's directory is still there")
	for _, kept := range []string{mine, making, d} {
		_, err := os.Stat(kept)
		assert.NoError(t, err, "%s was removed", kept)
	}
}
