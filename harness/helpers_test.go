package harness

import (
	"context"
	"testing"
	"time"

	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/lockprobe"
)

// Helpers of the harness's own lock and semaphore tests.

var bg = context.Background()

// The harness's tests call lockprobe's helpers by the names they had
// when these lived here.
const patience = lockprobe.Patience

var (
	elsewhere = lockprobe.Elsewhere
	probe     = lockprobe.Lock
	probeSem  = lockprobe.Semaphore
)

// shortTimeout is the context timeout of Acquires that are meant to expire.
const shortTimeout = 50 * time.Millisecond

// skipUnlessLong skips a test that runs contendtest's stress check alone,
// unless make stress asked for long runs (CONTEND_STRESS=long): the
// family's conformance test runs it otherwise.
func skipUnlessLong(t *testing.T) {
	if contendtest.StressScale() == 1 {
		t.Skip("Test*Conformance runs the stress check; make stress (CONTEND_STRESS=long) runs it alone, 20 times longer")
	}
}
