package harness

import (
	"testing"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/raceflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allocRuns is how many calls testing.AllocsPerRun averages over.
const allocRuns = 1000

// TestZeroAllocs checks that the lab's own correct implementations allocate
// nothing on their hot paths: Counter.Add and Counter.Load, and
// Bucket.TryTake both when it grants and when it denies. References are
// measured and logged, not held to it (their allocations are the library's).
// The race detector allocates, so the test is skipped under -race.
func TestZeroAllocs(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("the race detector allocates; run without -race")
	}
	for _, impl := range Counters() {
		if !impl.Guarantee.Correct() {
			continue
		}
		c := impl.New()
		for _, op := range []struct {
			name string
			f    func()
		}{
			{"Add", func() { c.Add(3) }},
			{"Load", func() { sink += c.Load() }},
		} {
			t.Run("counter/"+impl.Name+"/"+op.name, func(t *testing.T) {
				checkAllocs(t, impl.Reference, op.f)
			})
		}
	}
	for _, impl := range Buckets() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run("bucket/"+impl.Name+"/grant", func(t *testing.T) {
			// Frozen clock and a burst no run can spend: every call grants.
			b, err := impl.New(contend.BucketConfig{Capacity: contend.MaxCapacity, Rate: contend.MaxRate, Clock: contend.NewManualClock(0)}) // frozen clock: never runs dry
			require.NoError(t, err)
			granted := true
			checkAllocs(t, impl.Reference, func() { granted = b.TryTake(1) && granted })
			assert.True(t, granted, "every TryTake should have been granted")
		})
		t.Run("bucket/"+impl.Name+"/deny", func(t *testing.T) {
			// One token, taken first, and a frozen clock: every call denies.
			b, err := impl.New(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			require.True(t, b.TryTake(1), "the first token")
			denied := true
			checkAllocs(t, impl.Reference, func() { denied = !b.TryTake(1) && denied })
			assert.True(t, denied, "every TryTake should have been denied")
		})
	}
}

// checkAllocs asserts that f allocates nothing on average, or for a
// reference only logs what it allocates.
func checkAllocs(t *testing.T, reference bool, f func()) {
	t.Helper()
	allocs := testing.AllocsPerRun(allocRuns, f)
	if reference {
		t.Logf("reference: %v allocs/op", allocs)
		return
	}
	assert.Zero(t, allocs, "allocs/op")
}
