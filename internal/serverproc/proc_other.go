//go:build !linux

package serverproc

import (
	"syscall"
	"time"
)

// sysProcAttr puts the server in its own process group. Outside Linux there
// is no parent-death signal: a crashed test binary may leave its servers
// running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitStopped cannot see thread states outside Linux: it returns at once.
func waitStopped(pid int, timeout time.Duration) error { return nil }
