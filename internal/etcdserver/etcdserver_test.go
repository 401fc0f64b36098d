package etcdserver

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// servingWithin probes m once, bounded by d.
func servingWithin(m *Member, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return m.Serving(ctx)
}

// running returns the pids of processes whose command line names dir: the
// members started on that data directory.
func running(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // not a process, or gone
		}
		if strings.Contains(string(b), dir) && !strings.Contains(string(b), "etcdserver.test") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// assertGone checks that no member of c runs any more and that the data
// directories are removed.
func assertGone(t *testing.T, c *Cluster) {
	t.Helper()
	for _, m := range c.Members() {
		assert.Empty(t, running(t, m.DataDir()), "member %s still runs after Stop", m.Name())
		_, err := os.Stat(m.DataDir())
		assert.True(t, errors.Is(err, os.ErrNotExist), "data directory %s left behind (%v)", m.DataDir(), err)
		_, err = net.DialTimeout("tcp", m.Addr(), 200*time.Millisecond)
		assert.Error(t, err, "%s still accepts connections after Stop", m.Addr())
	}
}

// put and get use the gRPC gateway, so that these tests need no client.
func put(ctx context.Context, m *Member, key, value string) error {
	var out struct{}
	return m.call(ctx, "/v3/kv/put", map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)), "value": base64.StdEncoding.EncodeToString([]byte(value)),
	}, &out)
}

func get(ctx context.Context, m *Member, key string) (string, error) {
	var out struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := m.call(ctx, "/v3/kv/range", map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))}, &out); err != nil {
		return "", err
	}
	if len(out.Kvs) == 0 {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(out.Kvs[0].Value)
	return string(b), err
}

func TestSingleMemberFaults(t *testing.T) {
	v, err := Backend.Version()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v, "etcd 3."), "Version() = %q", v)

	rc := servertest.Start(t, Backend, Single)
	c := rc.(*Cluster)
	require.Len(t, c.Nodes(), 1)
	m := c.Members()[0]
	assert.Equal(t, []string{m.Addr()}, c.Endpoints())
	assert.True(t, strings.HasPrefix(m.DataDir(), "/dev/shm/"), "data on %s, want tmpfs", m.DataDir())
	require.NoError(t, servingWithin(m, time.Second))
	_, err = c.Leader(ctxFor(t, time.Second))
	assert.ErrorIs(t, err, remote.ErrNoLeader, "a single member has no leader to report")

	ctx := ctxFor(t, 30*time.Second)
	require.NoError(t, put(ctx, m, "k", "before"))

	// Paused: the kernel accepts, nobody answers; within the probe's bound.
	// SIGSTOP stops a process's threads asynchronously: a probe sent the
	// instant Pause returns may still be answered, the next ones not.
	require.NoError(t, m.Pause())
	assert.Eventually(t, func() bool { return servingWithin(m, 200*time.Millisecond) != nil },
		2*time.Second, 10*time.Millisecond, "a paused member reported healthy")
	start := time.Now()
	assert.Error(t, servingWithin(m, 200*time.Millisecond))
	assert.Less(t, time.Since(start), time.Second, "the probe of a paused member overran its context")
	require.NoError(t, m.Resume())
	require.NoError(t, servingWithin(m, 2*time.Second))

	// Killed: refused; restarted on the same port with its data.
	require.NoError(t, m.Kill())
	require.NoError(t, m.Kill(), "Kill of a killed member")
	_, err = net.DialTimeout("tcp", m.Addr(), 200*time.Millisecond)
	assert.Error(t, err, "dialled a killed member")
	assert.Error(t, m.Pause(), "Pause of a killed member")
	addr := m.Addr()
	require.NoError(t, m.Restart(ctx))
	assert.Equal(t, addr, m.Addr(), "Restart moved the member")
	got, err := get(ctx, m, "k")
	require.NoError(t, err)
	assert.Equal(t, "before", got, "Restart lost the member's data (RestartKeepsData)")
	assert.True(t, Backend.RestartKeepsData)

	c.Stop()
	c.Stop() // idempotent
	assertGone(t, c)
	assert.ErrorIs(t, m.Resume(), ErrStopped)
	assert.ErrorIs(t, m.Restart(ctx), ErrStopped)
	assert.Error(t, servingWithin(m, 200*time.Millisecond))
}

func TestClusterLeaderKillAndPausedStop(t *testing.T) {
	c := servertest.Start(t, Backend, Cluster3).(*Cluster)
	require.Len(t, c.Nodes(), 3)
	ctx := ctxFor(t, 60*time.Second)
	for _, m := range c.Members() {
		require.NoError(t, servingWithin(m, time.Second), "member %s", m.Name())
	}
	leader, err := c.Leader(ctx)
	require.NoError(t, err)

	// Kill the leader: the others elect a new one, and the cluster takes
	// writes again.
	old := c.Members()[leader]
	require.NoError(t, old.Kill())
	killed := time.Now()
	var next int
	for {
		next, err = c.Leader(ctxFor(t, 500*time.Millisecond))
		if err == nil {
			break
		}
		require.Less(t, time.Since(killed), 10*time.Second, "no new leader 10 s after the leader was killed: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
	elected := time.Since(killed)
	assert.NotEqual(t, leader, next, "the killed member is still named leader")
	other := c.Members()[next]
	for put(ctxFor(t, time.Second), other, "k", "after") != nil {
		require.Less(t, time.Since(killed), 10*time.Second, "no write accepted 10 s after the leader was killed")
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("leader %s killed: new leader %s after %v, first write after %v",
		old.Name(), other.Name(), elected.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))

	// The killed member rejoins with its data and catches up.
	require.NoError(t, old.Restart(ctx))
	require.NoError(t, servingWithin(old, time.Second))
	for {
		got, err := get(ctxFor(t, time.Second), old, "k")
		if err == nil && got == "after" {
			break
		}
		require.Less(t, time.Since(killed), 20*time.Second, "the restarted member never saw the write: %q, %v", got, err)
		time.Sleep(20 * time.Millisecond)
	}
	_, err = c.Leader(ctx)
	require.NoError(t, err)

	// Pause two members (no quorum left): Stop still ends all three, at once.
	require.NoError(t, c.Members()[0].Pause())
	require.NoError(t, c.Members()[1].Pause())
	assert.Eventually(t, func() bool { return servingWithin(c.Members()[2], 300*time.Millisecond) != nil },
		3*time.Second, 10*time.Millisecond, "a member without a quorum reported healthy")
	_, err = c.Leader(ctxFor(t, 300*time.Millisecond))
	assert.ErrorIs(t, err, remote.ErrNoLeader)
	done := make(chan struct{})
	start := time.Now()
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop of a cluster with paused members hangs")
	}
	t.Logf("Stop with two paused members took %v", time.Since(start).Round(time.Millisecond))
	assertGone(t, c)
}

func TestMissingBinary(t *testing.T) {
	o := Options{Binary: "/nonexistent/etcd"}
	_, err := Start(context.Background(), Single, o)
	require.ErrorIs(t, err, ErrNotInstalled)
	assert.ErrorIs(t, err, remote.ErrNotInstalled)
	assert.Contains(t, err.Error(), Install, "the error does not say how to install etcd")
	_, err = Version(o)
	assert.ErrorIs(t, err, remote.ErrNotInstalled)
}

func TestStartFailsClearly(t *testing.T) {
	// A "server" that exits at once: Start names it and shows its output.
	script := filepath.Join(t.TempDir(), "fake-etcd")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho 'fake: refusing to start' >&2\nexit 3\n"), 0o755))
	_, err := Start(context.Background(), Single, Options{Binary: script, StartTimeout: 2 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fake-etcd")
	assert.Contains(t, err.Error(), "refusing to start")

	// One that never listens: Start gives up after StartTimeout, for every
	// member of a cluster at once, and leaves nothing behind.
	dir := t.TempDir()
	silent := filepath.Join(dir, "silent-etcd")
	require.NoError(t, os.WriteFile(silent, []byte("#!/bin/sh\necho $$ >>"+dir+"/pids\nexec sleep 30\n"), 0o755))
	start := time.Now()
	_, err = Start(context.Background(), Cluster3, Options{Binary: silent, StartTimeout: 300 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "silent-etcd")
	assert.Less(t, time.Since(start), 5*time.Second, "Start took too long to give up")
	pids, err := os.ReadFile(filepath.Join(dir, "pids"))
	require.NoError(t, err)
	require.Len(t, strings.Fields(string(pids)), 3, "every member was started")
	for _, pid := range strings.Fields(string(pids)) {
		_, err := os.Stat("/proc/" + pid)
		assert.True(t, errors.Is(err, os.ErrNotExist), "member process %s of the failed start still runs", pid)
	}

	_, err = Start(context.Background(), remote.Deployment{Name: "x", Topology: remote.Independent, Servers: 3}, Options{})
	assert.Error(t, err, "etcd has no independent topology")
	_, err = Start(context.Background(), remote.Deployment{Name: "x", Topology: remote.Replicated, Servers: 0}, Options{})
	assert.Error(t, err)
}
