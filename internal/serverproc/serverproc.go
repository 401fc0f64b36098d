// Package serverproc runs one throw-away server process for the lab's
// remote tier and fails it on purpose: pause (SIGSTOP), resume (SIGCONT),
// kill (SIGKILL) and restart with the same command. Each backend's server
// package (internal/redisserver, internal/zkserver, internal/etcdserver)
// describes its program with a Spec and builds its clusters from Processes.
//
// A process runs in the foreground as a child of the test binary, in its own
// process group, and on Linux with a parent-death signal, so that a crashed
// test binary leaves no server behind.
package serverproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes how to run and probe one server.
type Spec struct {
	// Name names the server in messages, e.g. "redis-server on 127.0.0.1:6379".
	Name string
	// Command returns the command for one run; it is called again for each
	// Restart, so it must return a new *exec.Cmd each time. Stdout, Stderr
	// and SysProcAttr are set by the package.
	Command func() *exec.Cmd
	// Ready returns nil once the server serves. Start and Restart poll it
	// with backoff until it succeeds, the process exits, or StartTimeout
	// passes.
	Ready func(ctx context.Context) error
	// StartTimeout bounds each start. Zero means 10 s.
	StartTimeout time.Duration
}

// ErrStopped is returned by a Process's methods after Stop.
var ErrStopped = errors.New("serverproc: server was stopped")

// ErrExited marks a start that failed because the process exited before it
// was ready; its output is in the error's text.
var ErrExited = errors.New("exited before it was ready")

// Process is one server, running or killed. Its methods are safe for
// concurrent use.
type Process struct {
	spec Spec

	mu      sync.Mutex
	run     *run // nil while killed
	stopped bool
}

// run is one execution of the server's command.
type run struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when cmd.Wait returns
	err  error         // cmd.Wait's result, valid after done
}

// Start runs spec's command and returns once Ready succeeds. If the process
// exits first, or StartTimeout passes, Start kills it and returns an error
// with its last output. ctx bounds the whole start.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = 10 * time.Second
	}
	p := &Process{spec: spec}
	r, err := p.launch(ctx)
	if err != nil {
		return nil, err
	}
	p.run = r
	return p, nil
}

func (p *Process) launch(ctx context.Context) (*run, error) {
	cmd := p.spec.Command()
	out := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("serverproc: starting %s: %w", p.spec.Name, err)
	}
	r := &run{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, p.spec.StartTimeout)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		perr := p.spec.Ready(pctx)
		pcancel()
		if perr == nil {
			return r, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("serverproc: %s %w (%v); its output:\n%s", p.spec.Name, ErrExited, r.err, strings.TrimSpace(out.String()))
		case <-ctx.Done():
			kill(r)
			return nil, fmt.Errorf("serverproc: %s was not ready within %v (last probe: %v); its output:\n%s",
				p.spec.Name, p.spec.StartTimeout, perr, strings.TrimSpace(out.String()))
		case <-time.After(delay):
		}
	}
}

// kill sends SIGKILL to r (a stopped process dies too) and waits for it.
func kill(r *run) {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// Pause stops the process with SIGSTOP and returns once every thread of
// it has stopped (on Linux), so that nothing it answers after Pause
// returns. Pausing a paused process does nothing.
func (p *Process) Pause() error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	p.mu.Lock()
	run := p.run
	p.mu.Unlock()
	if run == nil {
		return fmt.Errorf("serverproc: %s is not running (killed)", p.spec.Name)
	}
	return waitStopped(run.cmd.Process.Pid, pauseTimeout)
}

// pauseTimeout bounds how long Pause waits for the threads to stop.
const pauseTimeout = 5 * time.Second

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stopped:
		return ErrStopped
	case p.run == nil:
		return fmt.Errorf("serverproc: %s is not running (killed)", p.spec.Name)
	}
	if err := p.run.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("serverproc: signal %v to %s: %w", sig, p.spec.Name, err)
	}
	return nil
}

// Kill ends the process with SIGKILL and waits for it to exit. Killing a
// killed process does nothing.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return ErrStopped
	}
	if p.run != nil {
		kill(p.run)
		p.run = nil
	}
	return nil
}

// Restart kills the process if it runs and starts the command again,
// returning once Ready succeeds, as Start does.
func (p *Process) Restart(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return ErrStopped
	}
	if p.run != nil {
		kill(p.run)
		p.run = nil
	}
	r, err := p.launch(ctx)
	if err != nil {
		return err
	}
	p.run = r
	return nil
}

// Stop kills the process if it still runs and waits for it to exit. It is
// idempotent. The lab's servers keep nothing worth a graceful shutdown, so
// Stop never waits on one (an etcd member can take seconds to leave).
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil {
		kill(p.run)
		p.run = nil
	}
	p.stopped = true
}

// Output returns the last 64 KiB the current run printed, for diagnosing a
// failure; "" while killed.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return ""
	}
	return p.run.out.String()
}

// FreePorts returns n distinct loopback ports that were free a moment ago:
// each is picked by listening on 127.0.0.1:0, and all listeners are held
// until every port is picked. Another process can still take one before
// the server binds it; callers that can tell (an address-in-use exit)
// retry with new ports.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("serverproc: picking a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// DataDir makes a new directory for a server's data on tmpfs (/dev/shm)
// when the machine has one, else in the system's temporary directory. The
// caller removes it.
func DataDir(prefix string) (string, error) {
	base := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	return os.MkdirTemp(base, prefix)
}

// tailBuffer is a buffer safe for the process's writes and our reads,
// keeping about the last 64 KiB.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
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

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
