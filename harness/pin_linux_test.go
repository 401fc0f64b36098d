package harness

import (
	"runtime"
	"syscall"
	"unsafe"
)

// pinThread binds the calling OS thread to CPU cpu (sched_setaffinity on
// the thread). The caller must have locked its goroutine to the thread.
func pinThread(cpu int) error {
	var set [16]uint64 // a cpu_set_t of 1024 CPUs
	set[cpu/64] |= 1 << (cpu % 64)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(set), uintptr(unsafe.Pointer(&set))); e != 0 {
		return e
	}
	return nil
}

// splitAddsUnsupported says why RecordSplitAdds cannot be expected to
// split pershard's Adds here, or "" if it can: it needs two CPUs that a
// thread may be bound to.
func splitAddsUnsupported() string {
	if runtime.NumCPU() < 2 {
		return "needs two CPUs: the two writers must run at once, on two stripes"
	}
	errs := make(chan error, 2)
	for cpu := range 2 {
		go func() {
			runtime.LockOSThread() // never unlocked: the bound thread exits with the goroutine
			errs <- pinThread(cpu)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			return "cannot bind a thread to CPU 0 and CPU 1: " + err.Error()
		}
	}
	return ""
}
