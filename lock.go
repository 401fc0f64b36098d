package contend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Lock is a mutual-exclusion lock, shaped so that an in-process lock and a
// network-backed one (Redis, ZooKeeper, etcd) implement the same contract.
//
// A correct Lock never has two live leases at once, and hands out fencing
// tokens that strictly increase from one holder to the next. A network
// lock's lease may expire (see Lease): after that instant it is no longer
// held, and a resource protected by the lock must reject writes that carry
// an older token than one it has seen; that is what the token is for.
type Lock interface {
	// Acquire blocks until the caller holds the lock, and returns its lease,
	// or returns ctx.Err() (wrapped) once ctx is done, holding nothing. A
	// ctx that is done before the lock is taken for this caller (already at
	// the call, or before the release it would take over from) makes it
	// fail even if it could take the lock without waiting; a ctx that ends
	// concurrently with the take may go either way. This is
	// golang.org/x/sync/semaphore's rule (go.dev/issue/63615); a network
	// lock keeps it up to a request already sent when ctx ends.
	Acquire(ctx context.Context) (Lease, error)
	// TryAcquire acquires the lock if it is free, without waiting for a
	// holder to release it, and returns ErrHeld (wrapped) if it is not. A
	// ctx that is done already at the call returns ctx.Err() (wrapped),
	// holding nothing, even on a free lock; otherwise ctx bounds the attempt
	// itself (a network round trip).
	//
	// ErrHeld means the lock was held at some instant of the call: by a
	// live lease (until its Release returns), or by an Acquire in progress
	// that will return it as its lease. A lock that hands itself to the
	// next waiter in line keeps a weaker rule, the hand-off deviation: it
	// also reports ErrHeld while it is handed to a waiter whose ctx has
	// ended and that has not yet noticed and passed it on, with no lease
	// live or to come. harness.LockImpl.Deviation names the locks that do.
	TryAcquire(ctx context.Context) (Lease, error)
}

// Semaphore admits up to Capacity permits at once. Acquire and TryAcquire
// take n permits together, all or none. A correct Semaphore never has
// leases for more than Capacity permits live at once.
type Semaphore interface {
	// Acquire blocks until n permits are free and takes them, or returns
	// ctx.Err() (wrapped) once ctx is done, holding nothing; a ctx done
	// before the permits are taken for this caller fails it, as for
	// Lock.Acquire (a waiter woken with the permits gives them on to the
	// next). n <= 0 or n > Capacity is a *PermitError, at once, whatever
	// ctx: such a request could never succeed.
	Acquire(ctx context.Context, n int64) (Lease, error)
	// TryAcquire takes n permits if they are free now, or returns ErrHeld
	// (wrapped); n outside [1, Capacity] is a *PermitError, and a ctx done
	// already at the call returns ctx.Err() (wrapped), as for
	// Lock.TryAcquire. A FIFO semaphore also returns ErrHeld while others
	// wait, and counts permits handed to a waiter whose ctx has ended as
	// held until it gives them back.
	TryAcquire(ctx context.Context, n int64) (Lease, error)
	// Capacity returns the number of permits.
	Capacity() int64
}

// Lease is one holding of a Lock, or of n permits of a Semaphore. It is the
// proof of holding: only a lease can release what it holds, so releasing
// what one does not hold is impossible by construction, and releasing twice
// is an error.
type Lease interface {
	// Token returns the fencing token: strictly greater than the token of
	// every lease of the same Lock or Semaphore granted before this one. In
	// process it may simply count acquisitions.
	Token() uint64
	// Release gives the lease back. Releasing a lease that is no longer held
	// (released already, or expired) returns ErrNotHeld (wrapped) and
	// changes nothing.
	Release(ctx context.Context) error
	// Extend moves the lease's expiry to ttl from now, if it is still held;
	// otherwise it returns ErrNotHeld. ttl must be positive. A lease that
	// never expires (an in-process lock's) accepts Extend and stays without
	// expiry.
	Extend(ctx context.Context, ttl time.Duration) error
	// TTL returns how long the lease has left before it expires, as the
	// holder's clock sees it, and false if it never expires.
	TTL() (time.Duration, bool)
}

// ErrHeld is returned (wrapped) by TryAcquire when the lock, or enough
// permits, are held by others.
var ErrHeld = errors.New("contend: held by another holder")

// ErrNotHeld is returned (wrapped) by Release and Extend on a lease that is
// no longer held: released already, or expired.
var ErrNotHeld = errors.New("contend: lease is not held (released already, or expired)")

// ErrNotConstructed is returned (wrapped) by the methods of a lock whose
// zero value cannot work, when it was not made by its constructor.
var ErrNotConstructed = errors.New("contend: not made by its constructor")

// PermitError reports a Semaphore request for a number of permits that can
// never be granted.
type PermitError struct {
	N, Capacity int64
}

func (e *PermitError) Error() string {
	return fmt.Sprintf("contend: cannot acquire %d permits of a semaphore of %d: must be between 1 and the capacity", e.N, e.Capacity)
}
