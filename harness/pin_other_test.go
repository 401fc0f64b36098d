//go:build !linux

package harness

import "errors"

func pinThread(int) error {
	return errors.New("binding a thread to a CPU is implemented for Linux only")
}

func splitAddsUnsupported() string {
	return "binds threads to CPUs with sched_setaffinity, on Linux only"
}
