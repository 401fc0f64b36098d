package redisserver

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

func pingOK(t *testing.T, s *Server) {
	t.Helper()
	if err := pingWithin(s.Addr(), time.Second); err != nil {
		t.Fatalf("PING %s: %v", s.Addr(), err)
	}
}

func TestStartTPauseResumeKillRestartStop(t *testing.T) {
	c := servertest.Start(t, Backend, remote.Deployment{Name: "two", Topology: remote.Independent, Servers: 2})
	a, b := c.Nodes()[0].(*Server), c.Nodes()[1].(*Server)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on one address %s", a.Addr())
	}
	pingOK(t, a)
	pingOK(t, b)

	// Paused: the kernel accepts, nobody answers.
	if err := a.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := pingWithin(a.Addr(), 150*time.Millisecond); err == nil {
		t.Fatal("a paused server answered PING")
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("PING to a paused server took %v, want the 150ms timeout", el)
	}
	pingOK(t, b) // the other server is unaffected
	if err := a.Resume(); err != nil {
		t.Fatal(err)
	}
	pingOK(t, a)

	// Killed: connection refused.
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := a.Kill(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", a.Addr(), time.Second); err == nil {
		t.Fatal("dialled a killed server")
	}
	if err := a.Pause(); err == nil {
		t.Fatal("Pause of a killed server succeeded")
	}
	addr := a.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Addr() != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, a.Addr())
	}
	pingOK(t, a)

	// Restart of a paused server works too (SIGKILL ends a stopped process).
	if err := a.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	pingOK(t, a)
	if !strings.Contains(a.Output(), "Ready to accept connections") {
		t.Errorf("Output does not show the server's log:\n%s", a.Output())
	}

	a.Stop()
	a.Stop() // idempotent
	if err := a.Resume(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Resume after Stop: %v, want ErrStopped", err)
	}
	if err := a.Restart(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("Restart after Stop: %v, want ErrStopped", err)
	}
}

func TestStopWhilePaused(t *testing.T) {
	s := servertest.Start(t, Backend, Single).Nodes()[0].(*Server)
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop of a paused server hangs")
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{Binary: "/nonexistent/redis-server"})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "scripts/install-redis.sh") {
		t.Fatalf("error does not say how to install redis-server: %v", err)
	}
}

func TestStartFailsClearlyWhenNotRedis(t *testing.T) {
	// A "server" that exits at once: Start reports the binary and its output.
	script := t.TempDir() + "/fake-redis"
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'fake: refusing to start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Binary: script, StartTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "fake-redis") || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("err = %v, want one naming the binary and its output", err)
	}
}

func TestStartTimesOutOnSilentServer(t *testing.T) {
	// A "server" that never listens: Start gives up after StartTimeout and
	// names the binary and port.
	script := t.TempDir() + "/silent-redis"
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Start(context.Background(), Options{Binary: script, StartTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "silent-redis") || !strings.Contains(err.Error(), "127.0.0.1:") {
		t.Fatalf("err = %v, want one naming the binary and address", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Start took %v to give up, want about 300ms", el)
	}
}

func pingWithin(addr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Ping(ctx, addr)
}

func TestClusterIsABackend(t *testing.T) {
	v, err := Backend.Version()
	require.NoError(t, err)
	assert.Contains(t, v, "redis-server ")
	c := servertest.Start(t, Backend, Independent3)
	require.Len(t, c.Nodes(), 3)
	eps := c.Endpoints()
	assert.Len(t, eps, 3)
	for i, n := range c.Nodes() {
		assert.Equal(t, eps[i], n.Addr())
		assert.NoError(t, pingWithin(n.Addr(), time.Second))
	}
	_, err = c.Leader(context.Background())
	assert.ErrorIs(t, err, remote.ErrNoLeader)
	c.Stop()
	for _, n := range c.Nodes() {
		assert.Error(t, pingWithin(n.Addr(), 200*time.Millisecond), "a stopped cluster still answers")
	}
}
