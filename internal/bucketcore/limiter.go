package bucketcore

// The contend.Limiter side of the lab's buckets, written once over a Cell;
// the package documentation says how bookings and Cancel work.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/refill"
)

// Cell is where a bucket keeps its state word, and how it synchronises it:
// lock-free ([Word]) or under a lock ([Locked], [RWLocked], [LockedWord]).
// It is a small value, made on each call from pointers into the bucket.
type Cell struct {
	mu   sync.Locker    // nil: lock-free, by compare-and-swap on word; else guards the state for writes
	rmu  sync.Locker    // and for reads
	word *atomic.Uint64 // the state, or, under a lock, nil for tat
	tat  *uint64
}

// Word is a Cell updated by compare-and-swap on w.
func Word(w *atomic.Uint64) Cell { return Cell{word: w} }

// Locked is a Cell whose state *tat is guarded by mu.
func Locked(mu sync.Locker, tat *uint64) Cell { return Cell{mu: mu, rmu: mu, tat: tat} }

// RWLocked is a Cell whose state *tat is written under rw's lock and read
// under its read lock.
func RWLocked(rw *sync.RWMutex, tat *uint64) Cell {
	return Cell{mu: rw, rmu: rw.RLocker(), tat: tat}
}

// LockedWord is a Cell whose state w is guarded by mu, and loaded and
// stored atomically under it (for a word that is also lock-free elsewhere).
func LockedWord(mu sync.Locker, w *atomic.Uint64) Cell { return Cell{mu: mu, rmu: mu, word: w} }

// load and store access the state of a locked Cell, under its lock.
func (c Cell) load() uint64 {
	if c.word != nil {
		return c.word.Load()
	}
	return *c.tat
}

func (c Cell) store(v uint64) {
	if c.word != nil {
		c.word.Store(v)
	} else {
		*c.tat = v
	}
}

// Retired is the state of a cell that its owner has taken out of use
// (package keyed marks an evicted key's cell so): every operation on it
// returns ErrRetired, and TryTake denies (refill.Retired).
const Retired = refill.Retired

// ErrRetired is returned by the operations below on a Retired cell; the
// caller looks the cell up again.
var ErrRetired = errors.New("bucketcore: cell retired")

// errRange refuses a booking due beyond the bucket's range.
var errRange = errors.New("contend: the tokens would be due beyond the bucket's range (Limit.MaxElapsed since it was made, at least 146 years)")

// read returns the state and a reading taken after loading it.
func (c Cell) read(p *Params) (tat, e uint64) {
	if c.mu == nil {
		tat = c.word.Load()
		return tat, p.Elapsed()
	}
	c.rmu.Lock()
	tat = c.load()
	e = p.Elapsed()
	c.rmu.Unlock()
	return tat, e
}

// update calls f with the state and a reading taken after loading it (0,
// and no reading, for a nil p), and stores f's next if f says so,
// atomically: under the lock, or by a compare-and-swap that retries f
// (with a new reading) when the state changed. It returns ErrRetired,
// without calling f, on a Retired cell.
func (c Cell) update(p *Params, f func(tat, e uint64) (next uint64, store bool)) error {
	if c.mu == nil {
		for {
			tat := c.word.Load()
			if tat == Retired {
				return ErrRetired
			}
			next, store := f(tat, p.elapsed())
			if !store || c.word.CompareAndSwap(tat, next) {
				return nil
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tat := c.load()
	if tat == Retired {
		return ErrRetired
	}
	if next, store := f(tat, p.elapsed()); store {
		c.store(next)
	}
	return nil
}

// elapsed is Elapsed, or 0 for a nil p.
func (p *Params) elapsed() uint64 {
	if p == nil {
		return 0
	}
	return p.Elapsed()
}

// Retire marks the cell Retired if it was full at the reading e, taken
// before the call, and reports whether it did. A cell full at e makes, at e
// and at every later reading, a new full cell's decisions (same Params,
// same origin): see package keyed for the proof. An e older than the
// state's load is safe, only conservative: a state a grant stored after e
// is past e/u, so it is never judged full at e; one reading serves a
// whole sweep.
func (p *Params) Retire(c Cell, e uint64) bool {
	retired := false
	_ = c.update(nil, func(tat, _ uint64) (uint64, bool) { // no reading: e is the reading
		retired = !p.Limit.Denies(tat, e, p.Limit.Capacity())
		return Retired, retired
	})
	return retired
}

// Tokens returns the whole tokens the cell holds now, negative while
// bookings owe more than it holds (refill.Limit.Balance); 0 for the zero
// Params, whose Clock is nil.
func (p *Params) Tokens(c Cell) int64 {
	if p.Capacity() == 0 {
		return 0
	}
	tat, e := c.read(p)
	if tat == Retired {
		return p.Capacity() // what a new bucket in its place holds
	}
	return p.Limit.Balance(tat, e)
}

// Delay returns how long from now until n tokens are due in the cell,
// without taking them, or a *contend.TokenError.
func (p *Params) Delay(c Cell, n int64) (time.Duration, error) {
	if !p.Possible(n) {
		return 0, p.tokenError(n)
	}
	tat, e := c.read(p)
	if tat == Retired {
		return 0, ErrRetired
	}
	return duration(p.Limit.Due(tat, uint64(n)), e), nil
}

// duration returns due - e as a Duration, 0 if due <= e.
func duration(due, e uint64) time.Duration {
	if due <= e {
		return 0
	}
	return time.Duration(min(due-e, math.MaxInt64))
}

// Booking is one reservation's effect on a cell: the states before and
// after it, the elapsed time at which its tokens are due, and the reading
// it was decided at (due == at: due at once).
type Booking struct {
	prev, next, due, at uint64
}

// Book books n tokens (0 < n <= Capacity, which the caller checked) in the
// cell, due at most maxWait ns after the reading it is decided at (the
// caller's deadline). It returns the booking, or, booking nothing, a
// *contend.DeadlineError for a later due time (Delay filled, Left 0),
// errRange, or ErrRetired.
func (p *Params) Book(c Cell, n int64, maxWait uint64) (Booking, error) {
	var b Booking
	var bookErr error
	err := c.update(p, func(tat, e uint64) (uint64, bool) {
		d := p.Limit.Due(tat, uint64(n))
		switch {
		case d <= e:
			d = e // due now: a grant at this reading
		case d > p.Limit.MaxElapsed():
			bookErr = errRange
			return 0, false
		case d-e > maxWait:
			bookErr = &contend.DeadlineError{N: n, Delay: duration(d, e)}
			return 0, false
		}
		b = Booking{prev: tat, next: p.Limit.Granted(tat, d, uint64(n)), due: d, at: e}
		bookErr = nil
		return b.next, true
	})
	if err != nil {
		return Booking{}, err
	}
	return b, bookErr
}

// Cancel gives booking b back, exactly, if its tokens are not yet due and
// the cell still holds what b stored, and reports whether it did (see the
// file's comment).
func (p *Params) Cancel(c Cell, b Booking) bool {
	done := false
	_ = c.update(p, func(tat, e uint64) (uint64, bool) {
		done = e < b.due && tat == b.next
		return b.prev, done
	})
	return done
}

// reservation is a contend.Reservation on a cell.
type reservation struct {
	p    *Params
	c    Cell
	b    Booking
	used atomic.Bool // Cancel was called
}

func (r *reservation) Delay() time.Duration { return duration(r.b.due, r.p.Elapsed()) }

func (r *reservation) Cancel() bool {
	if r.used.Swap(true) {
		return false
	}
	return r.p.Cancel(r.c, r.b)
}

// Reserve books n tokens in the cell and returns the booking as a
// contend.Reservation, or a *contend.TokenError.
func (p *Params) Reserve(c Cell, n int64) (contend.Reservation, error) {
	if !p.Possible(n) {
		return nil, p.tokenError(n)
	}
	b, err := p.Book(c, n, math.MaxUint64)
	if err != nil {
		return nil, err
	}
	return &reservation{p: p, c: c, b: b}, nil
}

// Wait implements contend.Limiter.Wait on the cell.
func (p *Params) Wait(ctx context.Context, c Cell, n int64) error {
	if !p.Possible(n) {
		return p.tokenError(n)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("contend: Wait(%d): %w", n, err)
	}
	maxWait := uint64(math.MaxUint64)
	var left time.Duration
	if dl, ok := ctx.Deadline(); ok {
		left = max(time.Until(dl), 0)
		maxWait = uint64(left)
	}
	b, err := p.Book(c, n, maxWait)
	if err != nil {
		if de, ok := err.(*contend.DeadlineError); ok {
			de.Left = left
		}
		return err
	}
	if b.due == b.at {
		return nil // one clock reading, as TryTake's
	}
	if err := p.sleepUntil(ctx, b.due); err != nil {
		if p.Cancel(c, b) || p.Elapsed() < b.due {
			return fmt.Errorf("contend: Wait(%d): %w", n, err)
		}
		// The tokens came due before we could give them back: they are
		// the caller's.
	}
	return nil
}

// sleepUntil blocks until Elapsed() >= due, or ctx is done (ctx.Err()). On
// a contend.Sleeper it sleeps on the clock; otherwise on a runtime timer
// of the time left, read again when it fires. A clock that lags behind the
// timers (one that is not real time) is read again at doubling intervals,
// up to a second, so a Wait never spins.
func (p *Params) sleepUntil(ctx context.Context, due uint64) error {
	if s, ok := p.Clock.(contend.Sleeper); ok {
		at := p.Start + int64(min(due, math.MaxInt64))
		if at < p.Start { // overflow: a reading the clock never reaches
			at = math.MaxInt64
		}
		return s.SleepUntil(ctx, at)
	}
	var t *time.Timer
	var last time.Duration
	for {
		left := duration(due, p.Elapsed())
		if left == 0 {
			return nil
		}
		if last > 0 { // woken before the clock came: back off
			left = max(left, min(2*last, time.Second))
		}
		last = left
		if t == nil {
			t = time.NewTimer(left)
			defer t.Stop()
		} else {
			t.Reset(left)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
