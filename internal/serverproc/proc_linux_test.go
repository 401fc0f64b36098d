package serverproc

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWaitStopped: a busy process counts as running until SIGSTOP has
// reached it, waitStopped returns once it has, and SIGCONT makes it run
// again. threadsRunning reads the state after the command name, which
// here contains neither spaces nor parentheses; the parsing skips past the
// last ')' so that one that does cannot shift it.
func TestWaitStopped(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid

	running, err := threadsRunning(pid)
	require.NoError(t, err)
	assert.Equal(t, 1, running, "a busy single-threaded shell")

	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	require.NoError(t, waitStopped(pid, 5*time.Second))
	running, err = threadsRunning(pid)
	require.NoError(t, err)
	assert.Zero(t, running, "every thread stopped once waitStopped returns")

	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	assert.Eventually(t, func() bool {
		n, err := threadsRunning(pid)
		return err == nil && n == 1
	}, 5*time.Second, time.Millisecond, "running again after SIGCONT")

	_, err = threadsRunning(1 << 30)
	assert.Error(t, err, "a process that does not exist")
	assert.Error(t, waitStopped(1<<30, time.Second))
}
