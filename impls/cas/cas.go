// Package cas synchronises with single-word atomic instructions and no
// locks: the counter is one atomic.Int64, the bucket is one 64-bit word
// updated by compare-and-swap, and the semaphore's fast path is one word
// too, with a wait queue under a mutex for those who must wait.
//
//   - [Counter]: linearizable and wait-free.
//   - [Bucket]: the exact token bucket, lock-free and linearizable, with
//     the waiting side of [contend.Limiter] (Delay, Reserve, Wait).
//   - [Semaphore]: FIFO among waiters, with fencing tokens in grant order.
//
// # The semaphore's state word
//
// The state is one uint64: the queued bit, set exactly when the wait queue
// is not empty; the low 32 bits of the grant count; and the free permits.
//
//   - Acquire's fast path: load the word; if the queued bit is clear and
//     there are n free permits, compare-and-swap them away and count the
//     grant. No lock.
//   - Release's fast path: if the queued bit is clear, compare-and-swap the
//     n permits back. No lock.
//   - Slow path, under the mutex: an acquirer that finds too few permits
//     (or a queue) sets the queued bit by CAS, if it is not set, appends
//     itself to the queue and parks on its own channel. A releaser that
//     finds the bit set adds its permits under the mutex and serves the
//     queue from the head, deducting each served waiter's permits, counting
//     its grant and closing its channel, until the head asks for more than
//     are free or the queue is empty (then it clears the bit).
//
// # The semaphore's fencing tokens
//
// A grant's token is the grant count after it: epoch + the word's grant
// field. The field is in the word the grant's CAS (or deduction under the
// mutex) changes, so tokens follow the order in which permits are taken.
// The 2^32nd grant of an epoch carries out of the field: it is made only
// under the mutex with the word locked (the queued bit set, so that no CAS
// succeeds), which adds one epoch to Semaphore.epoch before the word shows
// the field wrapped to 0. A fast path loads the word, then the epoch, then
// CASes the word it loaded: if the CAS succeeds, the word did not change in
// between, so no carry happened in between either, and the epoch it read is
// the grant's. (Unless the word went through 2^32 grants and back to the
// same value between one acquirer's load and its CAS: the bound this
// packing buys.)
//
// # Why the semaphore loses no wake-up
//
// Three facts hold whenever the mutex is not held:
//
//	(a) the queued bit is set if and only if the queue is not empty: it is
//	    set under the mutex by the acquirer that then enqueues, under the
//	    same lock, and cleared under the mutex only when the queue empties
//	    (a carry sets it and clears it within one section under the mutex);
//	(b) while the bit is set, only a goroutine holding the mutex changes
//	    the word: both fast paths CAS against a word they loaded with the
//	    bit clear, so a CAS fails once the bit is set;
//	(c) if the queue is not empty, its head asks for more permits than are
//	    free: a waiter is enqueued as the head only when the acquirer saw
//	    too few permits in the same word its CAS set the bit in, and every
//	    section under the mutex that frees permits (a slow Release, a served
//	    waiter giving up, a head leaving) ends by serving heads while they
//	    fit.
//
// So a parked head waits only while its request does not fit, and by (b)
// the free count can only grow by a Release under the mutex, which by (c)
// serves it if it now fits; a waiter behind the head is served in turn as
// soon as those before it are. A fast-path Release whose CAS landed just
// before an acquirer set the bit is not lost either: the acquirer's CAS
// read the word after it, permits included. Go's atomics and sync.Mutex are
// sequentially consistent, which the argument relies on.
package cas

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Counter is a [contend.Counter] on one atomic.Int64 (a LOCK XADD on amd64).
// Add and Load are linearizable and wait-free, and the zero value is a
// zero counter. Cost: one atomic instruction and no allocation per call;
// under contention every Add moves the same cache line between cores, which
// is what the sharded counter in package pershard avoids (BenchmarkCounter
// compares them).
type Counter struct {
	n atomic.Int64
}

// NewCounter returns a zero Counter.
func NewCounter() *Counter { return new(Counter) }

// Add adds delta to the counter.
func (c *Counter) Add(delta int64) { c.n.Add(delta) }

// Load returns the counter's value.
func (c *Counter) Load() int64 { return c.n.Load() }

// Bucket is a lock-free contend.Bucket: GCRA (see package refill) with its
// whole state in one uint64, the bucket's theoretical arrival time.
//
// Guarantees:
//   - Exact and linearizable: each decision is the textbook token bucket's,
//     at a reading taken within its call (bucketcore.Params.TakeWord says
//     why the order of loads and readings makes it so). Over any window of
//     W it grants at most Capacity + Rate × W.
//   - A denial writes nothing. It may deny a request that the textbook
//     bucket grants only within refill.Tolerance of the boundary.
//   - Never fails open: a stale or backwards reading can only delay tokens.
//   - Range: every valid configuration works for at least 146 years
//     (refill.Limit.MaxElapsed); past that the bucket stops earning.
//
// Cost: two atomic loads (the second from the cache), one clock read, one
// multiplication (two more for a grant) and one CAS per grant; the clock read
// is outside the window between the last load and the CAS. A CAS that loses
// to another grant retries with the same reading, and reads the clock again
// only if the retry would deny.
type Bucket struct {
	tat atomic.Uint64
	p   bucketcore.Params
}

// NewBucket returns a full Bucket, or a *contend.ConfigError.
func NewBucket(cfg contend.BucketConfig) (*Bucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Bucket{p: p}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *Bucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	return b.p.TakeWord(&b.tat, uint64(n)) // see bucketcore.Params.TakeWord for the order of the readings
}

// The contend.Limiter methods. They are written once, in
// internal/bucketcore, over the bucket's word; none is on TryTake's path.

// Capacity returns the most tokens the bucket holds.
func (b *Bucket) Capacity() int64 { return b.p.Capacity() }

// Rate returns the refill rate in tokens per second, as configured.
func (b *Bucket) Rate() float64 { return b.p.Rate() }

// Tokens returns the whole tokens available now, negative while bookings
// owe more than the bucket holds (see contend.Limiter).
func (b *Bucket) Tokens() int64 { return b.p.Tokens(b.cell()) }

// Delay returns how long from now until n tokens are due, without taking
// them: 0 if TryTake(n) would be granted now.
func (b *Bucket) Delay(n int64) (time.Duration, error) { return b.p.Delay(b.cell(), n) }

// Reserve books n tokens, due now or later; see contend.Limiter.
func (b *Bucket) Reserve(n int64) (contend.Reservation, error) { return b.p.Reserve(b.cell(), n) }

// Wait books n tokens and blocks on a timer until they are due; see
// contend.Limiter.
func (b *Bucket) Wait(ctx context.Context, n int64) error { return b.p.Wait(ctx, b.cell(), n) }

func (b *Bucket) cell() bucketcore.Cell { return bucketcore.Word(&b.tat) }

var _ contend.Limiter = (*Bucket)(nil)
