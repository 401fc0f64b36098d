package serverproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr puts the server in its own process group (a terminal's ^C
// reaches the test, which then stops its servers, rather than killing them
// mid-test) and asks the kernel to kill it if the thread that started it
// dies, so a crashed test binary leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitStopped returns once every thread of process pid is stopped (state
// T in /proc/pid/task/*/stat), or after timeout. SIGSTOP is delivered
// asynchronously: until each thread has taken it, a multi-threaded server
// on another core can still answer a request, and a fault scenario that
// pauses a server must not begin while it does.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		running, err := threadsRunning(pid)
		if err != nil || running == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serverproc: %d of pid %d's threads not stopped after %v", running, pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// threadsRunning counts the threads of pid that are not stopped.
func threadsRunning(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("serverproc: %w", err)
	}
	n := 0
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain spaces or parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		if st := s[i+2]; st != 'T' && st != 't' && st != 'Z' && st != 'X' {
			n++
		}
	}
	return n, nil
}
