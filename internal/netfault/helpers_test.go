package netfault

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoServer echoes every byte back and counts what it saw, so that a test
// can tell whether bytes reached the server.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	accepted int
	received int64
	closed   bool
}

func startEcho(t testing.TB) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &echoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *echoServer) Addr() string { return s.ln.Addr().String() }

func (s *echoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.echo(c)
	}
}

func (s *echoServer) echo(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		s.mu.Lock()
		s.received += int64(n)
		s.mu.Unlock()
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stats returns how many connections the server accepted, how many are
// open, and how many bytes it received.
func (s *echoServer) stats() (accepted, open int, received int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, len(s.conns), s.received
}

func (s *echoServer) close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	s.wg.Wait()
}

// listen is Listen for a test: the proxy is closed at cleanup.
func listen(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Listen(target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// connected starts an echo server and a proxy to it, and returns them with
// a client connection through the proxy that has echoed once.
func connected(t testing.TB) (*echoServer, *Proxy, net.Conn) {
	t.Helper()
	srv := startEcho(t)
	p := listen(t, srv.Addr())
	c := dial(t, p.Addr())
	require.NoError(t, echoes(c, []byte("x"), time.Second))
	return srv, p, c
}

// dial connects to addr; the connection is closed at cleanup.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialAndRead connects to addr and reads one byte, and returns the first
// error: a connection the proxy resets at once fails the dial or the read,
// whichever the RST reaches first.
func dialAndRead(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

// send writes msg to c within timeout.
func send(c net.Conn, msg []byte, timeout time.Duration) error {
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Write(msg)
	return err
}

// expect reads len(want) bytes from c within timeout and checks them.
func expect(c net.Conn, want []byte, timeout time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("echo answered " + string(got) + ", want " + string(want))
	}
	return nil
}

// echoes sends msg on c and reads its echo, within timeout each way.
func echoes(c net.Conn, msg []byte, timeout time.Duration) error {
	if err := send(c, msg, timeout); err != nil {
		return err
	}
	return expect(c, msg, timeout)
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// assertReset checks that err is the TCP reset a fault injects.
func assertReset(t *testing.T, err error, msg string) {
	t.Helper()
	assert.ErrorIs(t, err, syscall.ECONNRESET, msg)
}

// eventually polls cond every 10 ms until it holds or limit passes.
func eventually(limit time.Duration, cond func() bool) bool {
	for end := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// ownGoroutines returns the stacks of live goroutines running this
// package's code (not its tests).
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var own []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, "\t") && strings.Contains(line, "/internal/netfault/") && !strings.Contains(line, "_test.go:") {
				own = append(own, g)
				break
			}
		}
	}
	return own
}

// requireNoGoroutinesLeft fails t if goroutines of this package are still
// running a second after every proxy was closed.
func requireNoGoroutinesLeft(t *testing.T) {
	t.Helper()
	var left []string
	if !eventually(time.Second, func() bool { left = ownGoroutines(); return len(left) == 0 }) {
		t.Fatalf("%d goroutines of package netfault left running:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// openFiles counts the process's open file descriptors, or -1 where
// /proc/self/fd does not exist.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
