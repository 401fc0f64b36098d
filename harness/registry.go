// Package harness is the one place every implementation of the lab joins:
// the registry below, as data, and, in its tests, what runs over it. The
// checks (package contendtest: conformance, 100-goroutine stress,
// linearizability), the benchmarks, the demonstrations of the racy and
// broken controls and the remote fault scenarios all read the registry,
// so a new strategy or backend is one package plus one entry here.
//
// The package's non-test code links no testing code: cmd/catalog and the
// report read the registry without it.
package harness

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/catalog"
	"github.com/contend-lab/contend/impls/antipattern"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/impls/mutex"
	"github.com/contend-lab/contend/impls/naive"
	"github.com/contend-lab/contend/impls/pershard"
	"github.com/contend-lab/contend/impls/reference"
	"github.com/contend-lab/contend/impls/rwmutex"
)

// Guarantee is what an implementation promises, and so what the harness
// holds it to (see package catalog for each value's meaning).
type Guarantee = catalog.Guarantee

// The guarantees.
const (
	Exact       = catalog.Exact
	Approximate = catalog.Approximate
	Racy        = catalog.Racy
	Broken      = catalog.Broken
)

// CounterImpl is one registered Counter implementation.
type CounterImpl struct {
	Name      string // benchmark and report name: lower case, no trailing -digits
	New       func() contend.Counter
	Guarantee Guarantee
	Reference bool   // a library users would otherwise pick, run as the bar to beat
	Summary   string // one line: how it synchronises, and what Load guarantees
	Flaw      string // for Racy and Broken: what goes wrong
}

// BucketImpl is one registered Bucket implementation.
type BucketImpl struct {
	Name      string // benchmark and report name: lower case, no trailing -digits
	New       func(contend.BucketConfig) (contend.Bucket, error)
	Guarantee Guarantee
	Reference bool
	Summary   string
	Flaw      string
	// UnderGrant, for an Approximate bucket, returns the most tokens it may
	// grant fewer than Capacity + Rate × elapsed when demand exceeds supply,
	// beyond what an Exact bucket may. Computed for the current GOMAXPROCS.
	UnderGrant func(cfg contend.BucketConfig) int64
	// BurstExcess, for an Approximate bucket, returns the most tokens it may
	// grant over any window W beyond the textbook bound Capacity + Rate × W
	// (an Exact bucket: none). Computed for the current GOMAXPROCS.
	BurstExcess func(cfg contend.BucketConfig) int64
	// Deviations lists, for a reference implementation, the conformance
	// checks it fails, by check name, with what it does instead. The harness
	// runs those checks expecting them to fail, so the list stays true and
	// the report can show it; the lab's own implementations have none.
	//
	// The key StressDeviation declares that the reference breaks the stress
	// invariants under concurrency. A stress run then logs the violation it
	// measures instead of failing; it does not insist on one, because a
	// timing-dependent failure cannot be forced. The reference's own package
	// pins the mechanism with a deterministic test.
	Deviations map[string]string
}

// StressDeviation is the BucketImpl.Deviations key for a reference that
// breaks the stress invariants (over- or under-grants under concurrency).
const StressDeviation = catalog.StressDeviation

// TextbookDeviation is the BucketImpl.Deviations key for a reference whose
// sequential decisions differ from the textbook token bucket's (package
// textbook) beyond refill.Tolerance.
const TextbookDeviation = catalog.TextbookDeviation

// Counters returns every registered Counter implementation, in the order
// the report lists them.
func Counters() []CounterImpl {
	return []CounterImpl{
		{Name: "naive", New: func() contend.Counter { return naive.NewCounter() }, Guarantee: Racy,
			Summary: "plain int64, no synchronisation", Flaw: "concurrent Adds lose updates; the race detector flags it"},
		{Name: "mutex", New: func() contend.Counter { return mutex.NewCounter() }, Guarantee: Exact,
			Summary: "sync.Mutex around an int64; linearizable"},
		{Name: "reentrant", New: func() contend.Counter { return mutex.NewReentrantCounter() }, Guarantee: Exact,
			Summary: "reentrant mutex wrapper (owner goroutine + depth) around an int64; linearizable"},
		{Name: "rwmutex", New: func() contend.Counter { return rwmutex.NewCounter() }, Guarantee: Exact,
			Summary: "sync.RWMutex: Add under the write lock, Load under the read lock; linearizable"},
		{Name: "atomic", New: func() contend.Counter { return cas.NewCounter() }, Guarantee: Exact,
			Summary: "one shared atomic.Int64 (also the standard-library reference); linearizable, wait-free"},
		{Name: "pershard", New: func() contend.Counter { return pershard.NewCounter() }, Guarantee: Approximate,
			Summary: "per-P padded stripes, Load sums them; no lost update, Load not linearizable during Adds"},
		{Name: "xsync", New: func() contend.Counter { return reference.NewXsyncCounter() }, Guarantee: Approximate, Reference: true,
			Summary: "github.com/puzpuzpuz/xsync/v3 Counter: striped, Value sums stripes"},
	}
}

// Buckets returns every registered Bucket implementation, in the order the
// report lists them.
func Buckets() []BucketImpl {
	return []BucketImpl{
		{Name: "naive", New: adapt(naive.NewBucket), Guarantee: Racy,
			Summary: "fixed-point state with no synchronisation", Flaw: "concurrent requests spend the same tokens: over-grants; the race detector flags it"},
		{Name: "mutex", New: adapt(mutex.NewBucket), Guarantee: Exact,
			Summary: "sync.Mutex around the fixed-point state; linearizable"},
		{Name: "reentrant", New: adapt(mutex.NewReentrantBucket), Guarantee: Exact,
			Summary: "reentrant mutex wrapper around the fixed-point state; linearizable"},
		{Name: "rwmutex", New: adapt(rwmutex.NewBucket), Guarantee: Exact,
			Summary: "sync.RWMutex: denials decided under the read lock, grants under the write lock"},
		{Name: "atomic", New: adapt(cas.NewBucket), Guarantee: Exact,
			Summary: "GCRA: one CAS on one 64-bit word; the textbook bucket, lock-free, denials write nothing"},
		{Name: "pershard", New: adapt(pershard.NewBucket), Guarantee: Approximate, UnderGrant: pershard.UnderGrantBound, BurstExcess: pershard.BurstBound,
			Summary: "per-P token caches refilled in batches from one atomic bucket; never over Capacity + Rate × elapsed, a window at most S×B over"},
		{Name: "per-goroutine", New: adapt(antipattern.NewPerGoroutineBucket), Guarantee: Broken,
			Summary: "anti-pattern: one private bucket per goroutine, no shared limit",
			Flaw:    "grants up to N times the limit with N goroutines"},
		{Name: "wallclock", New: adapt(antipattern.NewWallClockBucket), Guarantee: Broken,
			Summary: "anti-pattern: refills from time.Now().UnixNano() instead of the monotonic clock",
			Flaw:    "a forward wall-clock step refills the bucket at once: over-grants"},
		{Name: "grid", New: adapt(antipattern.NewGridBucket), Guarantee: Broken,
			Summary: "the lab's old design: tokens due on a grid fixed at construction, counted as consumed",
			Flaw:    "a full bucket keeps its partial token: a window can grant Capacity + Rate × W + 1"},
		{Name: "float", New: adapt(antipattern.NewFloatBucket), Guarantee: Broken,
			Summary: "anti-pattern: float64 tokens and float64 time under a mutex",
			Flaw:    "float64 time loses nanoseconds at large clock values: over-grants"},
		{Name: "xrate", New: adapt(reference.NewTimeRateBucket), Guarantee: Exact, Reference: true,
			Summary: "golang.org/x/time/rate Limiter.AllowN on the injected clock (float64 inside, mutex)",
			Deviations: map[string]string{
				"refill-at-boundaries": "grants a token up to 1 ns before it is due: the wait for the missing fraction is truncated to 0 ns",
				"rate-edges":           "at MaxRate (1e9/s) grants the next token 1 ns early, as in refill-at-boundaries",
				"clock-backwards":      "a reading before the last one earns nothing, but a grant stores it, and the next reading earns the interval again",
				TextbookDeviation:      "grants up to 1 ns early (the wait for the missing fraction of a token is truncated), and spends requests above 2^53 as float64",
				StressDeviation: "over-grants under contention: a caller's clock reading, taken before the Limiter's mutex, " +
					"can be older than the last caller's, and the Limiter then counts the time between them twice (golang/go#56287)",
			}},
	}
}

// adapt turns a constructor returning a concrete type into the registry's
// signature. It avoids the typed-nil trap: a nil *T with an error must not
// become a non-nil contend.Bucket.
func adapt[T contend.Bucket](newBucket func(contend.BucketConfig) (T, error)) func(contend.BucketConfig) (contend.Bucket, error) {
	return func(cfg contend.BucketConfig) (contend.Bucket, error) {
		b, err := newBucket(cfg)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

// CounterByName returns the registered Counter named name.
func CounterByName(name string) (CounterImpl, bool) {
	for _, c := range Counters() {
		if c.Name == name {
			return c, true
		}
	}
	return CounterImpl{}, false
}

// BucketByName returns the registered Bucket named name.
func BucketByName(name string) (BucketImpl, bool) {
	for _, b := range Buckets() {
		if b.Name == name {
			return b, true
		}
	}
	return BucketImpl{}, false
}
