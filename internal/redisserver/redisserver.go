// Package redisserver starts throw-away redis-server processes on loopback
// for tests and benchmarks of the lab's Redis tier (impls/redis), and lets a
// test fail them on purpose: pause (SIGSTOP), resume (SIGCONT), kill
// (SIGKILL) and restart on the same port.
//
// Every server runs without persistence (--save "" --appendonly no), bound to
// 127.0.0.1 on a free port, in the foreground as a child of the test process.
// A restart therefore loses every key: that is the point of the kill and
// restart scenarios, not an accident.
//
// redis-server must be on PATH; scripts/install-redis.sh installs it. Where it
// is missing, Start returns an error wrapping ErrNotInstalled that says so,
// and StartT fails the test, unless the environment sets CONTEND_SKIP_REDIS=1,
// in which case StartT skips the test with that reason instead. That opt-out
// is for a developer machine without Redis; CI never sets it, so a CI machine
// without redis-server fails loudly rather than passing on skipped tests.
package redisserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the program Start runs when Options.Binary is empty.
const Binary = "redis-server"

// SkipEnv is the environment variable that turns StartT's failure on a
// missing redis-server into a skip, when set to "1".
const SkipEnv = "CONTEND_SKIP_REDIS"

// ErrNotInstalled is returned (wrapped) by Start when the redis-server binary
// cannot be found.
var ErrNotInstalled = errors.New("redis-server is not installed: run scripts/install-redis.sh (or set " + SkipEnv + "=1 to skip the Redis tests)")

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Binary is the redis-server to run: a path, or a name looked up on
	// PATH. Empty means Binary ("redis-server").
	Binary string
	// Args are extra command-line arguments, appended after the defaults
	// (so they can override them), e.g. []string{"--maxclients", "64"}.
	Args []string
	// StartTimeout bounds how long Start waits for the server to answer
	// PING, per attempt. Zero means 5 s.
	StartTimeout time.Duration
}

// Server is one redis-server process. Its methods are safe for concurrent
// use. After Stop, every method but Addr and Stop returns ErrStopped.
type Server struct {
	bin  string
	args []string // extra args
	port int
	wait time.Duration

	mu      sync.Mutex
	proc    *process // nil when killed and not restarted
	paused  bool
	stopped bool
}

// ErrStopped is returned by a Server's methods after Stop.
var ErrStopped = errors.New("redisserver: server was stopped")

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer   // its stdout and stderr, for error messages
	done chan struct{} // closed when cmd.Wait returns
	err  error         // cmd.Wait's result, valid after done
}

// bindRetries is how many ports Start tries when the one it picked is taken
// between picking it and redis-server binding it.
const bindRetries = 5

// Start starts redis-server on a free loopback port:
//
//	redis-server --bind 127.0.0.1 --port P --save "" --appendonly no --daemonize no [opts.Args...]
//
// and returns once the server answers PING. The port is picked by listening
// on 127.0.0.1:0 and closing the listener; if another process takes the port
// before redis-server binds it, Start retries with a new port (up to 5
// times). If the server does not answer PING within opts.StartTimeout, Start
// kills it and returns an error naming the binary, the port and the server's
// last output. ctx bounds the whole start.
//
// The caller must Stop the server; StartT does that for tests.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		bin = Binary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w (looked for %q: %v)", ErrNotInstalled, bin, err)
	}
	s := &Server{bin: path, args: append([]string(nil), opts.Args...), wait: opts.StartTimeout}
	if s.wait <= 0 {
		s.wait = 5 * time.Second
	}
	var lastErr error
	for range bindRetries {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redisserver: picking a free port: %w", err)
		}
		p, err := s.launch(ctx, port)
		if err == nil {
			s.port, s.proc = port, p
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address already in use")

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// launch runs redis-server on port and waits for PING.
func (s *Server) launch(ctx context.Context, port int) (*process, error) {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisserver: starting %s on port %d: %w", s.bin, port, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		perr := ping(ctx, addr, 200*time.Millisecond)
		if perr == nil {
			return p, nil
		}
		select {
		case <-p.done:
			msg := strings.TrimSpace(out.String())
			err := fmt.Errorf("redisserver: %s exited before answering PING on %s (%v); its output:\n%s", s.bin, addr, p.err, msg)
			if strings.Contains(msg, "Address already in use") {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			return nil, err
		case <-ctx.Done():
			kill(p)
			return nil, fmt.Errorf("redisserver: %s on %s did not answer PING within %v (last error: %v); its output:\n%s",
				s.bin, addr, s.wait, perr, strings.TrimSpace(out.String()))
		case <-time.After(delay):
		}
	}
}

// ping sends PING on a new connection and expects +PONG.
func ping(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// kill sends SIGKILL to p (a stopped process dies too) and waits for it.
func kill(p *process) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Addr returns the server's address, "127.0.0.1:P". The port stays the same
// across Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Pause stops the server process with SIGSTOP: connections stay open and
// the kernel still accepts connections and buffers requests, but nothing is
// answered until Resume. Commands buffered meanwhile run after Resume, even
// if their client gave up on them. Pausing a paused server does nothing.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP, true) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if s.proc == nil {
		return fmt.Errorf("redisserver: %s on %s is not running (killed)", s.bin, s.Addr())
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redisserver: signal %v to %s on %s: %w", sig, s.bin, s.Addr(), err)
	}
	s.paused = paused
	return nil
}

// Kill ends the server with SIGKILL (no shutdown, no goodbye to clients)
// and waits for the process to exit. Its keys are gone: nothing is
// persisted. Killing a killed server does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if s.proc != nil {
		kill(s.proc)
		s.proc, s.paused = nil, false
	}
	return nil
}

// Restart kills the server if it is running and starts a new, empty one on
// the same port, waiting for PING as Start does. It fails if the port was
// taken meanwhile.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if s.proc != nil {
		kill(s.proc)
		s.proc, s.paused = nil, false
	}
	p, err := s.launch(ctx, s.port)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// Stop kills the server, if it is still running, and waits for it to exit.
// It is idempotent and safe to call from t.Cleanup after any failure. A
// server without persistence loses nothing by SIGKILL, so Stop does not
// bother with a graceful shutdown.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		kill(s.proc)
		s.proc = nil
	}
	s.stopped, s.paused = true, false
}

// Output returns what the current server process has printed so far (its
// log), for diagnosing a failure. It is empty after Kill.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	return s.proc.out.String()
}

// StartT starts n servers for a test or benchmark and registers t.Cleanup
// to stop every one it started, also when a later start fails or the test
// fails. If redis-server is missing it fails the test with ErrNotInstalled's
// message (run scripts/install-redis.sh), or skips it when the environment
// sets CONTEND_SKIP_REDIS=1. Each start is bounded by 10 s.
func StartT(t testing.TB, n int) []*Server {
	t.Helper()
	servers := make([]*Server, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := Start(ctx, Options{})
		cancel()
		if err != nil {
			if errors.Is(err, ErrNotInstalled) && os.Getenv(SkipEnv) == "1" {
				t.Skipf("skipping: %v (%s=1 is set)", err, SkipEnv)
			}
			t.Fatalf("redisserver.StartT: server %d of %d: %v", i+1, n, err)
		}
		t.Cleanup(s.Stop)
		servers = append(servers, s)
	}
	return servers
}

// syncBuffer is a bytes.Buffer safe for the process's writes and our reads,
// keeping the last 64 KiB.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	const keep = 64 << 10
	if b.buf.Len()+len(p) > 2*keep {
		tail := append([]byte(nil), b.buf.Bytes()[max(0, b.buf.Len()-keep):]...)
		b.buf.Reset()
		b.buf.Write(tail)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
