//go:build !linux

package redisserver

import "syscall"

// sysProcAttr puts redis-server in its own process group. Outside Linux
// there is no parent-death signal: a crashed test binary may leave its
// servers running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
