package contendtest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// ErrSkipped is wrapped by the error of a [Check.Run] that did not run its
// check: the check does not apply to the implementation as its options
// declare it (fifo on a lock not declared FIFO), or it needs a
// *testing.T and was given none. [Counter], [Bucket], [Lock] and
// [Semaphore] skip such a check's subtest.
var ErrSkipped = errors.New("contendtest: skipped")

// Check is one named check of a contract, for implementations built by a
// constructor of type F. Take checks from [CounterChecks],
// [BucketChecks], [LockChecks] or [SemaphoreChecks]; the zero Check
// refuses to run.
type Check[F any] struct {
	name, doc string
	family    family
	run       func(c *checker, newImpl F, o *options)
	// ownDeviation: the check reads its own declared deviation (see
	// Deviates) and decides what it means; otherwise a declared
	// deviation inverts its verdict.
	ownDeviation bool
}

// Name returns the check's name, as Deviates and the subtests name it.
func (c Check[F]) Name() string { return c.name }

// Doc returns one line saying what the check asserts.
func (c Check[F]) Doc() string { return c.doc }

// Run runs the check on implementations newImpl builds, held to what opts
// declare. It returns nil when the implementation keeps its contract as
// declared (a check it is declared to deviate from must fail), an error
// wrapping [ErrSkipped] when the check was not run, and otherwise an error
// saying what the implementation did. A panic in the check's goroutine is
// returned as an error.
//
// Run never fails t: it uses t only to log, for temporary files and for
// synctest bubbles, and t may be nil outside a test (the logs are then
// dropped, and a check that needs a bubble is skipped).
func (c Check[F]) Run(t *testing.T, newImpl F, opts ...Option) error {
	if c.run == nil {
		return errors.New("contendtest: a zero Check: take checks from CounterChecks, BucketChecks, LockChecks or SemaphoreChecks")
	}
	o, err := parseOptions(c.family, opts)
	if err != nil {
		return err
	}
	return c.runWith(t, newImpl, o)
}

func (c Check[F]) runWith(t *testing.T, newImpl F, o *options) error {
	err := capture(t, func(ck *checker) { c.run(ck, newImpl, o) })
	why, deviates := o.deviates(c.name)
	if c.ownDeviation || !deviates || errors.Is(err, ErrSkipped) {
		return err
	}
	if err == nil {
		return fmt.Errorf("declared to deviate from %q (%s), but the check passes: remove the declaration", c.name, why)
	}
	if t != nil {
		t.Logf("deviates as declared (%s): %v", why, err)
	}
	return nil
}

// runAll runs each of checks on newImpl as a subtest of t: the body of
// Counter, Bucket, Lock and Semaphore.
func runAll[F any](t *testing.T, f family, checks []Check[F], newImpl F, opts []Option) {
	t.Helper()
	o, err := parseOptions(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			err := c.runWith(t, newImpl, o)
			switch {
			case errors.Is(err, ErrSkipped):
				t.Skip(err)
			case err != nil:
				t.Errorf("fails %q (%s): %v", c.name, c.doc, err)
			}
		})
	}
}

// checker is what a check reports to: a require.TestingT that records
// failures instead of failing a test, so that a check can be run
// expecting it to fail, and logs to t, if there is one. FailNow unwinds
// the check with a panic that capture recovers. Assertions are made on
// the check's own goroutine only; work on other goroutines hands its
// results back.
type checker struct {
	t        *testing.T
	dir      string // historiesDir, once made
	mu       sync.Mutex
	failures []string
}

type (
	failNow struct{}
	skipped struct{ why string }
)

func (c *checker) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
}

func (c *checker) FailNow() { panic(failNow{}) }

// Logf logs to t, if there is one.
func (c *checker) Logf(format string, args ...any) {
	if c.t != nil {
		c.t.Logf(format, args...)
	}
}

// skip ends the check as not run.
func (c *checker) skip(format string, args ...any) { panic(skipped{fmt.Sprintf(format, args...)}) }

// historiesDir returns where drawings of histories found not linearizable
// go: $CONTEND_HISTORIES_DIR, else t's temporary directory, else nowhere.
func (c *checker) historiesDir() string {
	if c.dir != "" {
		return c.dir
	}
	if dir := os.Getenv("CONTEND_HISTORIES_DIR"); dir != "" && os.MkdirAll(dir, 0o755) == nil {
		c.dir = dir
	} else if c.t != nil {
		c.dir = c.t.TempDir()
	}
	return c.dir
}

// capture runs check against a new checker and returns its failures, as
// one error, or its skip, as an error wrapping ErrSkipped.
func capture(t *testing.T, check func(c *checker)) (err error) {
	c := &checker{t: t}
	func() {
		defer func() {
			switch p := recover().(type) {
			case nil, failNow:
			case skipped:
				err = fmt.Errorf("%w: %s", ErrSkipped, p.why)
			default:
				c.Errorf("panic: %v", p)
			}
		}()
		check(c)
	}()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failures) == 0 {
		return nil
	}
	return errors.New(strings.Join(c.failures, "\n"))
}

// fromError adapts a check that returns what it found into one that
// reports it.
func fromError[F any](check func(newImpl F) error) func(c *checker, newImpl F, o *options) {
	return func(c *checker, newImpl F, _ *options) {
		if err := check(newImpl); err != nil {
			c.Errorf("%v", err)
		}
	}
}
