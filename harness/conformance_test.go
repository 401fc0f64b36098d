package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/contend-lab/contend/contendtest"
)

// The registry's correct implementations, each held by contendtest to its
// family's whole contract as the registry declares it: conformance,
// stress and linearizability. Racy and broken variants are shown failing
// by their own demonstrations instead (stress_test.go, lock_test.go,
// linearize_test.go, impls/antipattern).

func TestCounterConformance(t *testing.T) {
	for _, impl := range Counters() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) { contendtest.Counter(t, impl.New, counterOptions(impl)...) })
	}
}

func TestBucketConformance(t *testing.T) {
	for _, impl := range Buckets() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) { contendtest.Bucket(t, impl.New, bucketOptions(impl)...) })
	}
}

func TestLockConformance(t *testing.T) {
	for _, impl := range Locks() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) { contendtest.Lock(t, impl.New, lockOptions(impl)...) })
	}
}

func TestSemaphoreConformance(t *testing.T) {
	for _, impl := range Semaphores() {
		if !impl.Guarantee.Correct() {
			continue
		}
		t.Run(impl.Name, func(t *testing.T) { contendtest.Semaphore(t, impl.New, semaphoreOptions(impl)...) })
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
	checks := map[string]bool{}
	for _, c := range contendtest.BucketChecks() {
		checks[c.Name()] = true
	}
	assert.True(t, checks[StressDeviation] && checks[TextbookDeviation], "the deviation keys %q and %q name contendtest's checks", StressDeviation, TextbookDeviation)
	assert.Equal(t, contendtest.StressDeviation, StressDeviation)
	assert.Equal(t, contendtest.TextbookDeviation, TextbookDeviation)
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
