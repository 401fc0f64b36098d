package harness

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
)

// Helpers of the harness's own lock and semaphore tests (contendtest's
// checks have theirs).

var bg = context.Background()

// patience bounds every wait for something that should happen promptly
// (a blocked Acquire returning after its timeout, a waiter being granted),
// so that a broken implementation fails a check instead of hanging the
// suite.
const patience = 5 * time.Second

// shortTimeout is the context timeout of Acquires that are meant to expire.
const shortTimeout = 50 * time.Millisecond

// elsewhere runs f on a new goroutine and reports whether it returned
// within d. A goroutine that does not return is left behind: the check
// fails.
func elsewhere(d time.Duration, f func()) bool {
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

// probe tries the lock from another goroutine (so that a reentrant lock's
// holder does not simply nest) and releases it there if it got it. It
// returns TryAcquire's error, or an error if TryAcquire blocked.
func probe(l contend.Lock) error {
	var err error
	if !elsewhere(patience, func() {
		var lease contend.Lease
		if lease, err = l.TryAcquire(bg); err == nil {
			err = lease.Release(bg)
		}
	}) {
		return errors.New("TryAcquire blocked")
	}
	return err
}

// probeSem is probe for n permits of a semaphore.
func probeSem(s contend.Semaphore, n int64) error {
	var err error
	if !elsewhere(patience, func() {
		var lease contend.Lease
		if lease, err = s.TryAcquire(bg, n); err == nil {
			err = lease.Release(bg)
		}
	}) {
		return fmt.Errorf("TryAcquire(%d) blocked", n)
	}
	return err
}

// skipUnlessLong skips a test that runs contendtest's stress check alone,
// unless make stress asked for long runs (CONTEND_STRESS=long): the
// family's conformance test runs it otherwise.
func skipUnlessLong(t *testing.T) {
	if contendtest.StressScale() == 1 {
		t.Skip("Test*Conformance runs the stress check; make stress (CONTEND_STRESS=long) runs it alone, 20 times longer")
	}
}
