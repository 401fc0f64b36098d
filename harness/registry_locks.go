package harness

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/impls/channel"
	"github.com/contend-lab/contend/impls/mutex"
	"github.com/contend-lab/contend/impls/naive"
	"github.com/contend-lab/contend/impls/reference"
	"github.com/contend-lab/contend/impls/spin"
	"github.com/contend-lab/contend/impls/ticket"
)

// LockImpl is one registered in-process contend.Lock implementation.
//
// Guarantee is Exact for a lock that never has two live leases and whose
// tokens strictly increase from holder to holder (the harness checks both
// under stress), and Racy for the control, which the harness shows
// overlapping instead.
type LockImpl struct {
	Name      string // benchmark and report name: lower case, no trailing -digits
	New       func() contend.Lock
	Guarantee Guarantee
	Fair      bool // FIFO: a waiter is never overtaken by one that arrived after it
	// SpinsFIFO: waiters spin (never park) and are served in FIFO order, so
	// with more runnable goroutines than cores the next in line is usually
	// descheduled and every hand-off waits for a time slice (a convoy).
	SpinsFIFO bool
	Reference bool   // a library users would otherwise pick, run as the bar to beat
	Summary   string // one line: how it excludes, and in what order waiters get it
	Flaw      string // for Racy: what goes wrong
	// Deviation, if set, says how the lock keeps only the weaker
	// TryAcquire of contend.Lock (the hand-off deviation) instead of the
	// exact one; a linearizability model must allow it.
	Deviation string
}

// SemaphoreImpl is one registered in-process contend.Semaphore
// implementation. Guarantee is Exact for a semaphore that never has more
// than Capacity permits held (checked under stress), and Racy for the
// control, which the harness shows exceeding it.
type SemaphoreImpl struct {
	Name      string // benchmark and report name: lower case, no trailing -digits
	New       func(capacity int64) (contend.Semaphore, error)
	Guarantee Guarantee
	Reference bool
	// NoFencing: the implementation hands out no fencing token. Its Token
	// names the lease and grows across acquisitions that do not overlap,
	// but not in the order permits are taken; the linearizability check
	// uses linearize.NewUnfencedSemaphore for it.
	NoFencing bool
	Summary   string
	Flaw      string
}

// Locks returns every registered Lock implementation, in the order the
// report lists them.
func Locks() []LockImpl {
	return []LockImpl{
		{Name: "naive", New: func() contend.Lock { return naive.NewLock() }, Guarantee: Racy,
			Summary: "check-then-act on a plain bool, no synchronisation",
			Flaw:    "two waiters that read it free at once both take it: exclusion fails; the race detector flags it"},
		{Name: "mutex", New: func() contend.Lock { return mutex.NewLock() }, Guarantee: Exact,
			Summary: "sync.Mutex; cancellable waiters park on ctx and a wake-up channel sent by Release; not FIFO"},
		{Name: "reentrant", New: func() contend.Lock { return mutex.NewReentrantLock() }, Guarantee: Exact,
			Summary: "reentrant mutex (owner goroutine + depth): the holder re-acquires at once, one level deeper; not FIFO"},
		{Name: "spin", New: func() contend.Lock { return spin.NewLock() }, Guarantee: Exact,
			Summary: "test-and-test-and-set spinlock on an atomic.Bool, exponential backoff then Gosched; never parks, unfair"},
		{Name: "ticket", New: func() contend.Lock { return ticket.NewLock() }, Guarantee: Exact, Fair: true, SpinsFIFO: true,
			Summary:   "ticket lock: FIFO by drawn ticket; a cancelled waiter abandons its ticket and releases skip it",
			Deviation: "hand-off: a waiter whose ctx has ended keeps its ticket until it next looks; a release that serves it meanwhile leaves TryAcquire reporting ErrHeld with no lease live until it serves the next"},
		{Name: "channel", New: func() contend.Lock { return channel.NewLock() }, Guarantee: Exact, Fair: true,
			Summary:   "channel of capacity 1: send to acquire, receive to release; FIFO among parked waiters",
			Deviation: "hand-off: a release moves the next waiter's send into the buffer; if that waiter's ctx has ended, TryAcquire reports ErrHeld with no lease live until it receives it back"},
	}
}

// Semaphores returns every registered Semaphore implementation, in the
// order the report lists them.
func Semaphores() []SemaphoreImpl {
	return []SemaphoreImpl{
		{Name: "naive", New: adaptSemaphore(naive.NewSemaphore), Guarantee: Racy,
			Summary: "check-then-act on a plain bool per permit, no synchronisation",
			Flaw:    "concurrent acquirers all see room and hold more than Capacity; the race detector flags it"},
		{Name: "channel", New: adaptSemaphore(channel.NewSemaphore), Guarantee: Exact,
			Summary: "buffered channel, one value per permit; multi-permit acquires serialised so they cannot deadlock"},
		{Name: "xsemaphore", New: adaptSemaphore(reference.NewWeightedSemaphore), Guarantee: Exact, Reference: true, NoFencing: true,
			Summary: "golang.org/x/sync/semaphore Weighted: permit count and FIFO waiters under one mutex"},
		{Name: "atomic", New: adaptSemaphore(cas.NewSemaphore), Guarantee: Exact,
			Summary: "one CAS on an atomic permit word when free and nobody waits; FIFO queue under a mutex otherwise"},
	}
}

// adaptSemaphore turns a constructor returning a concrete type into the
// registry's signature, avoiding the typed-nil trap as adapt does.
func adaptSemaphore[T contend.Semaphore](newSemaphore func(int64) (T, error)) func(int64) (contend.Semaphore, error) {
	return func(capacity int64) (contend.Semaphore, error) {
		s, err := newSemaphore(capacity)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// LockByName returns the registered Lock named name.
func LockByName(name string) (LockImpl, bool) {
	for _, l := range Locks() {
		if l.Name == name {
			return l, true
		}
	}
	return LockImpl{}, false
}

// SemaphoreByName returns the registered Semaphore named name.
func SemaphoreByName(name string) (SemaphoreImpl, bool) {
	for _, s := range Semaphores() {
		if s.Name == name {
			return s, true
		}
	}
	return SemaphoreImpl{}, false
}
