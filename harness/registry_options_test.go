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
	i := slices.IndexFunc(checks, func(c contendtest.Check[F]) bool { return c.Name() == name })
	require.GreaterOrEqual(t, i, 0, "no check %q", name)
	err := checks[i].Run(t, newImpl, opts...)
	if errors.Is(err, contendtest.ErrSkipped) {
		t.Skip(err)
	}
	assert.NoError(t, err, "%s (%s)", name, checks[i].Doc())
}
