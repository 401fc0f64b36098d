package zklab_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/remote/zklab"
)

// TestSilentHandshake: a server that accepts the connection and never
// answers the handshake (a restarting ZooKeeper can do that) costs the
// client a couple of seconds, not go-zookeeper's 6.7 session timeouts: the
// client gives up on it and dials again, here reaching the real server
// through a proxy that was silent only the first time.
func TestSilentHandshake(t *testing.T) {
	eps := standalone(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for first := true; ; first = false {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if first {
				t.Cleanup(func() { conn.Close() }) // accepted, never answered
				continue
			}
			wg.Go(func() { pipe(conn, eps[0]) })
		}
	})
	start := time.Now()
	c, err := zklab.Dial([]string{ln.Addr().String()}, session, zklab.WithSetupTimeout(10*time.Second))
	require.NoError(t, err, "the client waited on the silent handshake")
	t.Logf("a session after %v", time.Since(start))
	assert.Equal(t, session, c.SessionTimeout())
	require.NoError(t, c.Close())
}

// pipe copies between conn and a new connection to addr until either
// closes.
func pipe(conn net.Conn, addr string) {
	defer conn.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}
