package serverproc

import "syscall"

// sysProcAttr puts the server in its own process group (a terminal's ^C
// reaches the test, which then stops its servers, rather than killing them
// mid-test) and asks the kernel to kill it if the thread that started it
// dies, so a crashed test binary leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
