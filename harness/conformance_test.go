package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBucketConformance holds every bucket that claims to be correct to the
// whole contract. Racy and broken variants are shown failing by their own
// demonstrations instead (stress_test.go, impls/antipattern).
func TestBucketConformance(t *testing.T) {
	for _, impl := range Buckets() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			t.Parallel()
			BucketConformance(t, impl)
		})
	}
}

func TestCounterConformance(t *testing.T) {
	for _, impl := range Counters() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) {
			t.Parallel()
			CounterConformance(t, impl)
		})
	}
}

// TestConformanceChecksCatchFaults runs each check over buckets that are
// wrong in one specific way, so that every check is shown able to fail.
func TestConformanceChecksCatchFaults(t *testing.T) {
	checks := map[string]BucketCheck{}
	for _, c := range BucketChecks() {
		checks[c.Name] = c
	}
	for _, f := range faultyBuckets() {
		t.Run(f.name, func(t *testing.T) {
			for _, name := range f.failing {
				c, ok := checks[name]
				require.True(t, ok, "unknown check %q", name)
				assert.Error(t, runBucketCheck(t, c, f.new), "check %q must catch a bucket that %s", name, f.name)
			}
		})
	}
}

// TestRegistryNames keeps the registry fit for benchmark names and the
// report: unique, lower case, and no trailing -digits (benchfmt reads those
// as GOMAXPROCS).
func TestRegistryNames(t *testing.T) {
	seen := map[string]bool{}
	var names []string
	for _, c := range Counters() {
		names = append(names, "counter "+c.Name)
		assert.NotEmpty(t, c.Summary, c.Name)
		if !c.Guarantee.Correct() {
			assert.NotEmpty(t, c.Flaw, "%s is %v and must say what goes wrong", c.Name, c.Guarantee)
		}
	}
	for _, b := range Buckets() {
		names = append(names, "bucket "+b.Name)
		assert.NotEmpty(t, b.Summary, b.Name)
		if !b.Guarantee.Correct() {
			assert.NotEmpty(t, b.Flaw, "%s is %v and must say what goes wrong", b.Name, b.Guarantee)
		}
		if b.Guarantee == Approximate {
			assert.NotNil(t, b.UnderGrant, "approximate bucket %s must state its under-grant bound", b.Name)
			assert.NotNil(t, b.BurstExcess, "approximate bucket %s must state its windowed bound", b.Name)
		}
		checks := map[string]bool{StressDeviation: true, TextbookDeviation: true}
		for _, c := range BucketChecks() {
			checks[c.Name] = true
		}
		for check, why := range b.Deviations {
			assert.True(t, b.Reference, "%s: only references may declare deviations (%s)", b.Name, check)
			assert.True(t, checks[check], "%s declares a deviation from %q, which is not a check", b.Name, check)
			assert.NotEmpty(t, why, "%s: say what it does instead of %q", b.Name, check)
		}
	}
	for _, n := range names {
		assert.False(t, seen[n], "duplicate %s", n)
		seen[n] = true
		assert.Regexp(t, `^(counter|bucket) [a-z][a-z0-9-]*[a-z]$`, n)
	}
}
