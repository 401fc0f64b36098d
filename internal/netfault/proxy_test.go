package netfault

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cutWait is how long a test waits to see that nothing arrives through a
// cut path.
const cutWait = 200 * time.Millisecond

func TestListenRejectsBadTargets(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1"} {
		t.Run(target, func(t *testing.T) {
			p, err := Listen(target)
			assert.Error(t, err)
			assert.Nil(t, p)
		})
	}
}

func TestZeroProxyForwardsNothingAndRefusesClose(t *testing.T) {
	var p Proxy
	assert.Empty(t, p.Addr())
	assert.Empty(t, p.Target())
	p.Partition()
	p.Heal()
	p.ResetNextRequest()
	p.ResetNextResponse()
	p.RefuseNew(true)
	assert.NoError(t, p.SetLatency(time.Millisecond, 0))
	assert.Zero(t, p.ResetConnections())
	assert.Equal(t, Stats{}, p.Stats())
	assert.ErrorIs(t, p.Close(), ErrNotListening)

	var ps Proxies
	ps.Partition()
	ps.Heal()
	assert.NoError(t, ps.SetLatency(time.Millisecond, 0))
	assert.Zero(t, ps.ResetConnections())
	assert.NoError(t, ps.Close())
}

func TestForwardsBothWaysAndCounts(t *testing.T) {
	srv := startEcho(t)
	p := listen(t, srv.Addr())
	assert.Equal(t, srv.Addr(), p.Target())
	c := dial(t, p.Addr())
	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // several chunks
	require.NoError(t, echoes(c, []byte("hello"), time.Second))
	require.NoError(t, echoes(c, big, 5*time.Second))
	st := p.Stats()
	n := int64(len("hello") + len(big))
	assert.Equal(t, Stats{Accepted: 1, Open: 1, ToServer: n, ToClient: n}, st)

	// A client's half-close reaches the server, whose close reaches the
	// client, and the proxy forgets the connection.
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
	assert.True(t, eventually(time.Second, func() bool { return p.Stats().Open == 0 }), "the proxy still holds a connection both ends closed")
}

func TestPartitionCutsOneClientOnly(t *testing.T) {
	srv := startEcho(t)
	pa, pb := listen(t, srv.Addr()), listen(t, srv.Addr())
	a, b := dial(t, pa.Addr()), dial(t, pb.Addr())
	require.NoError(t, echoes(a, []byte("a0"), time.Second))
	require.NoError(t, echoes(b, []byte("b0"), time.Second))
	acceptedBefore, _, receivedBefore := srv.stats()

	pa.Partition()
	pa.Partition() // a second cut changes nothing
	require.NoError(t, send(a, []byte("a1"), time.Second), "a write into a cut path is buffered, not refused")
	err := expect(a, []byte("a1"), cutWait)
	assert.True(t, isTimeout(err), "a read through a cut path: %v, want a timeout", err)
	assert.NoError(t, echoes(b, []byte("b1"), time.Second), "another client's path was cut too")

	// A new connection is accepted but not connected to the server.
	a2 := dial(t, pa.Addr())
	require.NoError(t, send(a2, []byte("n1"), time.Second))
	time.Sleep(cutWait)
	accepted, _, received := srv.stats()
	assert.Equal(t, acceptedBefore, accepted, "the server saw a connection made during the cut")
	assert.Equal(t, receivedBefore+2, received, "bytes crossed the cut (only b1's 2 may arrive)")
	assert.Equal(t, 2, pa.Stats().Open, "open connections through the cut path")
	assert.Equal(t, 1, pb.Stats().Open)

	// Heal: what was held arrives, in order, and the path works again.
	pa.Heal()
	pa.Heal()
	assert.NoError(t, expect(a, []byte("a1"), time.Second), "the bytes held by the cut were lost")
	assert.NoError(t, echoes(a, []byte("a2"), time.Second))
	assert.NoError(t, expect(a2, []byte("n1"), time.Second), "the connection made during the cut was lost")
	accepted, _, _ = srv.stats()
	assert.Equal(t, acceptedBefore+1, accepted)
}

func TestPartitionHoldsTheClientsClose(t *testing.T) {
	// A client that gives up during the cut and closes: after the heal the
	// server still gets its request, then its FIN, as after a real cut.
	srv, p, c := connected(t)
	p.Partition()
	require.NoError(t, send(c, []byte("late"), time.Second))
	require.NoError(t, c.Close())
	time.Sleep(cutWait)
	_, open, received := srv.stats()
	assert.Equal(t, 1, open, "the client's close crossed the cut")
	assert.Equal(t, int64(1), received)
	p.Heal()
	assert.True(t, eventually(time.Second, func() bool { _, open, received = srv.stats(); return open == 0 && received == 5 }),
		"after the heal the server has %d connections open and received %d bytes, want 0 and 5", open, received)
}

func TestLongCutResetDropsWhatWasHeld(t *testing.T) {
	srv, p, c := connected(t)
	p.Partition()
	require.NoError(t, send(c, []byte("held"), time.Second))
	held := dial(t, p.Addr()) // accepted, never connected
	require.Eventually(t, func() bool { return p.Stats().Open == 2 }, time.Second, time.Millisecond)
	assert.Equal(t, 2, p.ResetConnections())
	err := expect(c, []byte("held"), time.Second)
	assertReset(t, err, "a read on a connection reset during the cut")
	_ = held.SetReadDeadline(time.Now().Add(time.Second))
	_, err = held.Read(make([]byte, 1))
	assertReset(t, err, "a read on a held connection reset during the cut")
	p.Heal()
	time.Sleep(50 * time.Millisecond)
	accepted, _, received := srv.stats()
	assert.Equal(t, int64(1), received, "bytes held by the cut reached the server after a reset")
	assert.Equal(t, 1, accepted, "a connection reset while held reached the server")
	assert.NoError(t, echoes(dial(t, p.Addr()), []byte("y"), time.Second), "the path does not work after the heal")
	assert.Equal(t, int64(2), p.Stats().Resets)
}

func TestLatencyDelaysEachDirection(t *testing.T) {
	const d = 60 * time.Millisecond
	srv, p, c := connected(t)
	for _, tc := range []struct {
		name             string
		toServer, toCli  time.Duration
		wantAtLeast      time.Duration
		serverHasItAfter time.Duration
	}{
		{"to-server", d, 0, d, d},
		{"to-client", 0, d, d, 0},
		{"both", d, d, 2 * d, d},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, p.SetLatency(tc.toServer, tc.toCli))
			_, _, before := srv.stats()
			start := time.Now()
			require.NoError(t, send(c, []byte("ping"), time.Second))
			if tc.serverHasItAfter > 0 {
				time.Sleep(tc.serverHasItAfter / 2)
				_, _, got := srv.stats()
				assert.Equal(t, before, got, "the request reached the server before its latency")
			}
			require.NoError(t, expect(c, []byte("ping"), 5*time.Second))
			assert.GreaterOrEqual(t, time.Since(start), tc.wantAtLeast)
		})
	}
	require.NoError(t, p.SetLatency(0, 0))
	assert.NoError(t, echoes(c, []byte("fast"), time.Second))
	assert.Error(t, p.SetLatency(-time.Nanosecond, 0))
	assert.Error(t, p.SetLatency(0, -time.Second))
}

func TestLatencyDoesNotAccumulateOverPipelinedChunks(t *testing.T) {
	// Ten writes 10 ms apart through 300 ms of latency: each must be
	// delayed once. A proxy that slept out each chunk's latency before
	// reading the next would read writes 2 to 10 together after the first
	// sleep and deliver them about 2 × 300 ms after the first was sent,
	// each more than 500 ms after it was sent. The bound below (450 ms)
	// is on that doubling, 150 ms above the delay a correct proxy adds:
	// it is not a bound on the proxy's speed.
	const (
		d      = 300 * time.Millisecond
		writes = 10
	)
	srv := startEcho(t)
	p := listen(t, srv.Addr())
	require.NoError(t, p.SetLatency(d, 0))
	c := dial(t, p.Addr())
	sent := make(chan time.Time, writes)
	go func() {
		for range writes {
			sent <- time.Now()
			_ = send(c, []byte("k"), time.Second)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var worst time.Duration
	for i := range writes {
		require.NoError(t, expect(c, []byte("k"), 5*time.Second), "write %d", i)
		delay := time.Since(<-sent)
		assert.GreaterOrEqual(t, delay, d, "write %d was delayed less than the latency", i)
		worst = max(worst, delay)
	}
	assert.Less(t, worst, d*3/2, "latency accumulated over pipelined writes")
}

func TestLatencyRemovedKeepsOrder(t *testing.T) {
	// Bytes that arrive after the latency is removed must not overtake
	// bytes still waiting out the old latency.
	srv := startEcho(t)
	p := listen(t, srv.Addr())
	c := dial(t, p.Addr())
	for _, dir := range []struct{ toServer, toClient time.Duration }{{100 * time.Millisecond, 0}, {0, 100 * time.Millisecond}} {
		require.NoError(t, p.SetLatency(dir.toServer, dir.toClient))
		require.NoError(t, send(c, []byte("first"), time.Second))
		time.Sleep(10 * time.Millisecond) // "first" is in the proxy
		require.NoError(t, p.SetLatency(0, 0))
		require.NoError(t, send(c, []byte("second"), time.Second))
		assert.NoError(t, expect(c, []byte("firstsecond"), time.Second), "latency %+v", dir)
	}
}

func TestLatencyAndPartitionHoldTogether(t *testing.T) {
	// Bytes waiting out their latency when the cut starts are held by it,
	// past the time they were due.
	const d = 300 * time.Millisecond
	srv := startEcho(t)
	p := listen(t, srv.Addr())
	require.NoError(t, p.SetLatency(d, 0))
	c := dial(t, p.Addr())
	require.NoError(t, send(c, []byte("q"), time.Second))
	time.Sleep(d / 3) // the proxy has read "q" into its delay line
	p.Partition()
	time.Sleep(d)
	_, _, received := srv.stats()
	assert.Zero(t, received, "a delayed chunk crossed the cut")
	p.Heal()
	assert.NoError(t, expect(c, []byte("q"), time.Second))
}

func TestResetNextRequestDropsTheRequest(t *testing.T) {
	srv, p, c := connected(t)
	p.ResetNextRequest()
	// An armed reset waits for bytes: an idle connection stays up.
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, 1, p.Stats().Open)
	require.NoError(t, send(c, []byte("req"), time.Second))
	err := expect(c, []byte("req"), time.Second)
	assertReset(t, err, "the client's read after ResetNextRequest")
	time.Sleep(20 * time.Millisecond)
	_, _, received := srv.stats()
	assert.Equal(t, int64(1), received, "the reset request reached the server")

	// One shot: the next connection works.
	assert.NoError(t, echoes(dial(t, p.Addr()), []byte("y"), time.Second))
	assert.Equal(t, int64(1), p.Stats().Resets)
}

func TestResetNextResponseRunsTheRequest(t *testing.T) {
	srv, p, c := connected(t)
	p.ResetNextResponse()
	require.NoError(t, send(c, []byte("req"), time.Second))
	err := expect(c, []byte("req"), time.Second)
	assertReset(t, err, "the client's read after ResetNextResponse")
	_, _, received := srv.stats()
	assert.Equal(t, int64(4), received, "the request did not reach the server")
	assert.NoError(t, echoes(dial(t, p.Addr()), []byte("y"), time.Second))
}

func TestResetConnectionsAtOnce(t *testing.T) {
	srv := startEcho(t)
	p := listen(t, srv.Addr())
	c1, c2 := dial(t, p.Addr()), dial(t, p.Addr())
	require.NoError(t, echoes(c1, []byte("1"), time.Second))
	require.NoError(t, echoes(c2, []byte("2"), time.Second))
	assert.Equal(t, 2, p.ResetConnections())
	for _, c := range []net.Conn{c1, c2} {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		assertReset(t, err, "a read after ResetConnections")
	}
	assert.True(t, eventually(time.Second, func() bool { _, open, _ := srv.stats(); return open == 0 }), "the server's ends were not closed")
	assert.Zero(t, p.ResetConnections())
	assert.NoError(t, echoes(dial(t, p.Addr()), []byte("3"), time.Second))
}

func TestRefuseNewLeavesOpenConnections(t *testing.T) {
	srv, p, old := connected(t)
	p.RefuseNew(true)
	assertReset(t, dialAndRead(p.Addr()), "a refused connection")
	assert.NoError(t, echoes(old, []byte("p"), time.Second), "RefuseNew broke an open connection")
	accepted, _, _ := srv.stats()
	assert.Equal(t, 1, accepted, "a refused connection reached the server")
	p.RefuseNew(false)
	assert.NoError(t, echoes(dial(t, p.Addr()), []byte("q"), time.Second))
	assert.Equal(t, int64(1), p.Stats().Resets)
}

func TestTargetDownResetsTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	p := listen(t, addr)
	assertReset(t, dialAndRead(p.Addr()), "a connection through a proxy whose target is down")
	assert.Zero(t, p.Stats().Resets, "a dead target is not a fault the proxy injected")
}

func TestCloseLeavesNothingBehind(t *testing.T) {
	files := openFiles()
	srv := startEcho(t)
	var clients []net.Conn
	p, err := Listen(srv.Addr())
	require.NoError(t, err)
	connect := func() net.Conn {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		require.NoError(t, err)
		clients = append(clients, c)
		return c
	}
	// Connections in every state: idle, mid-latency with a delay line,
	// held by a cut before and after connecting.
	require.NoError(t, echoes(connect(), []byte("idle"), time.Second))
	require.NoError(t, p.SetLatency(time.Hour, 0))
	require.NoError(t, send(connect(), []byte("slow"), time.Second))
	require.NoError(t, p.SetLatency(0, 0))
	cut := connect()
	require.NoError(t, echoes(cut, []byte("c"), time.Second))
	p.Partition()
	require.NoError(t, send(cut, []byte("held"), time.Second))
	connect()
	require.Eventually(t, func() bool { return p.Stats().Open == 4 }, time.Second, 10*time.Millisecond)

	require.NoError(t, p.Close())
	assert.NoError(t, p.Close(), "a second Close")
	requireNoGoroutinesLeft(t)
	assert.Zero(t, p.Stats().Open)
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := io.ReadAll(c)
		assert.False(t, isTimeout(err), "client %d still connected after Close", i)
		_ = c.Close()
	}
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "dial after Close: %v, want refused", err)
	assert.True(t, eventually(time.Second, func() bool { _, open, _ := srv.stats(); return open == 0 }), "the server's ends were not closed")
	srv.close()
	if files >= 0 {
		var now int
		assert.True(t, eventually(time.Second, func() bool { now = openFiles(); return now <= files }), "%d files open before, %d after", files, now)
	}
}
