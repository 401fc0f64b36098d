package harness

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/contendtest"
)

// The registry's declarations as contendtest options: what each
// implementation is held to by contendtest's checks.

func counterOptions(impl CounterImpl) []contendtest.Option {
	if impl.Guarantee == Approximate {
		return []contendtest.Option{contendtest.LoadNotLinearizable()}
	}
	return nil
}

func bucketOptions(impl BucketImpl) []contendtest.Option {
	var opts []contendtest.Option
	if impl.Guarantee == Approximate {
		opts = append(opts, contendtest.Approximate(impl.UnderGrant, impl.BurstExcess))
	}
	for check, why := range impl.Deviations {
		opts = append(opts, contendtest.Deviates(check, why))
	}
	return opts
}

func lockOptions(impl LockImpl) []contendtest.Option {
	var opts []contendtest.Option
	if impl.Fair {
		opts = append(opts, contendtest.FIFO())
	}
	if impl.SpinsFIFO {
		opts = append(opts, contendtest.SpinsFIFO())
	}
	if impl.Deviation != "" {
		opts = append(opts, contendtest.WeakTryAcquire(impl.Deviation))
	}
	return opts
}

func semaphoreOptions(impl SemaphoreImpl) []contendtest.Option {
	if impl.NoFencing {
		return []contendtest.Option{contendtest.NoFencing()}
	}
	return nil
}

// runListed runs the check named name of checks on newImpl, as
// contendtest's family functions run it: skipped if it does not apply,
// failing t if it fails.
func runListed[F any](t *testing.T, checks []contendtest.Check[F], name string, newImpl F, opts ...contendtest.Option) {
	t.Helper()
	c := checkNamed(t, checks, name)
	err := c.Run(t, newImpl, opts...)
	if errors.Is(err, contendtest.ErrSkipped) {
		t.Skip(err)
	}
	assert.NoError(t, err, "%s (%s)", name, c.Doc())
}

// TestRegistryOptions: each registry declaration reaches contendtest, as
// the check it changes shows: a fair lock is held to FIFO order (its fifo
// check runs), an approximate counter's Load is not held to
// linearizability (its check is skipped), a semaphore without fencing
// tokens must still deviate from tokens-follow-grants.
func TestRegistryOptions(t *testing.T) {
	for _, impl := range Locks() {
		if !impl.Guarantee.Correct() {
			continue
		}
		err := checkNamed(t, contendtest.LockChecks(), "fifo").Run(t, impl.New, lockOptions(impl)...)
		if impl.Fair {
			assert.NoError(t, err, "lock %s is fair", impl.Name)
		} else {
			assert.ErrorIs(t, err, contendtest.ErrSkipped, "lock %s is not fair", impl.Name)
		}
	}
	for _, impl := range Counters() {
		if impl.Guarantee == Approximate {
			err := checkNamed(t, contendtest.CounterChecks(), "linearizable").Run(t, impl.New, counterOptions(impl)...)
			assert.ErrorIs(t, err, contendtest.ErrSkipped, "counter %s is approximate", impl.Name)
		}
	}
	for _, impl := range Semaphores() {
		if impl.NoFencing {
			// Without the option, the check fails: the option is what
			// makes it pass.
			check := checkNamed(t, contendtest.SemaphoreChecks(), "tokens-follow-grants")
			assert.Error(t, check.Run(t, impl.New), "semaphore %s without NoFencing", impl.Name)
			assert.NoError(t, check.Run(t, impl.New, semaphoreOptions(impl)...), "semaphore %s", impl.Name)
		}
	}
}

// checkNamed returns the check named name of checks.
func checkNamed[F any](t *testing.T, checks []contendtest.Check[F], name string) contendtest.Check[F] {
	t.Helper()
	i := slices.IndexFunc(checks, func(c contendtest.Check[F]) bool { return c.Name() == name })
	require.GreaterOrEqual(t, i, 0, "no check %q", name)
	return checks[i]
}
