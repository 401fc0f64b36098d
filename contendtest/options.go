package contendtest

import (
	"errors"
	"fmt"
	"slices"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/linearize"
)

// family is the contract a check is written for.
type family uint8

const (
	counterFamily family = iota
	bucketFamily
	lockFamily
	semaphoreFamily
)

var familyNames = [...]string{counterFamily: "counter", bucketFamily: "bucket", lockFamily: "lock", semaphoreFamily: "semaphore"}

func (f family) String() string { return familyNames[f] }

// An Option declares what an implementation promises beside, or instead
// of, its contract's exact guarantee, so that the checks hold it to that
// and no more. An option that does not apply to the family being checked
// (FIFO for a counter) fails the check at once, as does the zero Option.
type Option struct {
	name     string
	families []family
	apply    func(*options)
}

// options is what a check reads of the Options it was given.
type options struct {
	approximate bool // buckets: Approximate; counters: LoadNotLinearizable
	underGrant  func(contend.BucketConfig) int64
	burstExcess func(contend.BucketConfig) int64
	deviations  map[string]string
	noFencing   bool
	fifo        bool
	spinsFIFO   bool
	weakTry     string
	onHistories func(linearize.Summary)
}

// Approximate declares a bucket that never grants more than Capacity +
// Rate × elapsed since it was made, but over a window W may grant up to
// burstExcess(cfg) tokens more than Capacity + Rate × W, and, when demand
// exceeds supply, up to underGrant(cfg) fewer than Capacity + Rate ×
// elapsed beyond what an exact bucket may. Both are computed for the
// current GOMAXPROCS; a nil function is a bound of 0. The checks against
// the textbook bucket's decisions (stalled-reader, linearizable) are then
// skipped.
func Approximate(underGrant, burstExcess func(cfg contend.BucketConfig) int64) Option {
	return Option{name: "Approximate", families: []family{bucketFamily}, apply: func(o *options) {
		o.approximate = true
		o.underGrant, o.burstExcess = underGrant, burstExcess
	}}
}

// LoadNotLinearizable declares a counter that never loses an update, but
// whose Load, while Adds run, may return a sum the counter never held (a
// striped counter that sums its stripes one by one). The linearizability
// check is then skipped.
func LoadNotLinearizable() Option {
	return Option{name: "LoadNotLinearizable", families: []family{counterFamily}, apply: func(o *options) { o.approximate = true }}
}

// Deviates declares that the implementation fails the check named check,
// by design, and why. The check is run expecting it to fail, so that the
// declaration stays true: one that passes fails, asking for the
// declaration to be removed. For a bucket, Deviates("stress", why)
// declares that it breaks the stress bounds under concurrency: the stress
// check logs the violation it measures instead of failing, without
// insisting on one (a timing-dependent failure cannot be forced), and the
// stale-readings check must show it within 20 runs; Deviates("textbook",
// why) declares that its sequential decisions differ from the textbook
// bucket's: the textbook check must find a disagreement, and the checks
// against the textbook model are skipped.
func Deviates(check, why string) Option {
	return Option{name: fmt.Sprintf("Deviates(%q)", check), families: []family{counterFamily, bucketFamily, lockFamily, semaphoreFamily}, apply: func(o *options) {
		if o.deviations == nil {
			o.deviations = map[string]string{}
		}
		o.deviations[check] = why
	}}
}

// NoFencing declares a lock or semaphore whose lease tokens name leases
// but are not fencing tokens: they are non-zero, unique among live leases
// and grow from one acquisition to the next while acquisitions do not
// overlap, but of two overlapping ones the later grant may carry the
// smaller token. The stress check then does not count token regressions,
// the linearizability check uses the model without fencing, and a
// semaphore's tokens-follow-grants check must still show the deviation.
func NoFencing() Option {
	return Option{name: "NoFencing", families: []family{lockFamily, semaphoreFamily}, apply: func(o *options) { o.noFencing = true }}
}

// FIFO declares a lock that serves its waiters in arrival order; the fifo
// check, skipped otherwise, then holds it to that.
func FIFO() Option {
	return Option{name: "FIFO", families: []family{lockFamily}, apply: func(o *options) { o.fifo = true }}
}

// SpinsFIFO declares a lock whose waiters spin (never park) and are served
// in FIFO order: with more runnable goroutines than cores, every hand-off
// waits for the next in line to be scheduled. The linearizability check
// then records 4 clients instead of 16, so that a history takes
// milliseconds to record, not seconds.
func SpinsFIFO() Option {
	return Option{name: "SpinsFIFO", families: []family{lockFamily}, apply: func(o *options) { o.spinsFIFO = true }}
}

// WeakTryAcquire declares a lock that keeps only the weaker TryAcquire
// rule of [contend.Lock], and says how: it may report ErrHeld while no
// lease is live or about to be (a hand-off to a waiter whose ctx has
// ended). The linearizability model then allows that.
func WeakTryAcquire(why string) Option {
	return Option{name: "WeakTryAcquire", families: []family{lockFamily}, apply: func(o *options) { o.weakTry = why }}
}

// OnHistories asks the linearizability check of a counter, lock or
// semaphore to hand f the summary of each of its runs (one per
// GOMAXPROCS), with Impl left empty for f to fill in: for a report.
func OnHistories(f func(linearize.Summary)) Option {
	return Option{name: "OnHistories", families: []family{counterFamily, lockFamily, semaphoreFamily}, apply: func(o *options) { o.onHistories = f }}
}

// parseOptions applies opts for a check of family f, or says what is
// wrong with them.
func parseOptions(f family, opts []Option) (*options, error) {
	o := &options{}
	var errs []error
	for _, opt := range opts {
		switch {
		case opt.apply == nil:
			errs = append(errs, errors.New("contendtest: a zero Option: make options with this package's functions"))
		case !slices.Contains(opt.families, f):
			errs = append(errs, fmt.Errorf("contendtest: option %s does not apply to a %v", opt.name, f))
		default:
			opt.apply(o)
		}
	}
	names := checkNames(f)
	for check, why := range o.deviations {
		if !slices.Contains(names, check) {
			errs = append(errs, fmt.Errorf("contendtest: a deviation from %q, which is not a %v check (the checks: %v)", check, f, names))
		}
		if why == "" {
			errs = append(errs, fmt.Errorf("contendtest: the deviation from %q must say what the implementation does instead", check))
		}
	}
	if o.weakTry == "" && slices.ContainsFunc(opts, func(opt Option) bool { return opt.name == "WeakTryAcquire" }) {
		errs = append(errs, errors.New("contendtest: WeakTryAcquire must say how the lock keeps only the weaker rule"))
	}
	return o, errors.Join(errs...)
}

// deviates returns why the implementation is declared to fail check, if it is.
func (o *options) deviates(check string) (string, bool) {
	why, ok := o.deviations[check]
	return why, ok
}

// checkNames returns the names of family f's checks.
func checkNames(f family) []string {
	var names []string
	add := func(n string) { names = append(names, n) }
	switch f {
	case counterFamily:
		for _, c := range CounterChecks() {
			add(c.name)
		}
	case bucketFamily:
		for _, c := range BucketChecks() {
			add(c.name)
		}
	case lockFamily:
		for _, c := range LockChecks() {
			add(c.name)
		}
	case semaphoreFamily:
		for _, c := range SemaphoreChecks() {
			add(c.name)
		}
	}
	return names
}

// underGrantFor returns an approximate bucket's stated under-grant bound
// for cfg, or 0.
func (o *options) underGrantFor(cfg contend.BucketConfig) int64 {
	if !o.approximate || o.underGrant == nil {
		return 0
	}
	return o.underGrant(cfg)
}

// burstExcessFor returns an approximate bucket's stated excess over any
// window for cfg, or 0.
func (o *options) burstExcessFor(cfg contend.BucketConfig) int64 {
	if !o.approximate || o.burstExcess == nil {
		return 0
	}
	return o.burstExcess(cfg)
}
