// Package lockprobe tries a lock or a semaphore from another goroutine,
// for the checks and tests that must tell whether it is free without
// holding it themselves (a reentrant lock's holder would simply nest).
package lockprobe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/contend-lab/contend"
)

// Patience bounds every wait for something that should happen promptly
// (a blocked Acquire returning after its timeout, a waiter being
// granted), so that a broken implementation fails a check instead of
// hanging it.
const Patience = 5 * time.Second

// Elsewhere runs f on a new goroutine and reports whether it returned
// within d. A goroutine that does not return is left behind: the caller
// fails.
func Elsewhere(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Lock tries l from another goroutine and releases it there if it got it.
// It returns TryAcquire's error (nil: the lock was free), or an error if
// TryAcquire blocked for Patience.
func Lock(l contend.Lock) error {
	var err error
	if !Elsewhere(Patience, func() {
		var lease contend.Lease
		if lease, err = l.TryAcquire(context.Background()); err == nil {
			err = lease.Release(context.Background())
		}
	}) {
		return errors.New("TryAcquire blocked")
	}
	return err
}

// Semaphore is Lock for n permits of s.
func Semaphore(s contend.Semaphore, n int64) error {
	var err error
	if !Elsewhere(Patience, func() {
		var lease contend.Lease
		if lease, err = s.TryAcquire(context.Background(), n); err == nil {
			err = lease.Release(context.Background())
		}
	}) {
		return fmt.Errorf("TryAcquire(%d) blocked", n)
	}
	return err
}
