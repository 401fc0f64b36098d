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
	// or returns ctx.Err() (wrapped) once ctx is done, holding nothing.
	Acquire(ctx context.Context) (Lease, error)
	// TryAcquire acquires the lock if it is free, without waiting for a
	// holder to release it, and returns ErrHeld (wrapped) if it is not. The
	// context bounds the attempt itself (a network round trip).
	TryAcquire(ctx context.Context) (Lease, error)
}

// Semaphore admits up to Capacity permits at once. Acquire and TryAcquire
// take n permits together, all or none. A correct Semaphore never has
// leases for more than Capacity permits live at once.
type Semaphore interface {
	// Acquire blocks until n permits are free and takes them, or returns
	// ctx.Err() (wrapped) once ctx is done, holding nothing. n <= 0 or
	// n > Capacity is a *PermitError, at once: such a request could never
	// succeed.
	Acquire(ctx context.Context, n int64) (Lease, error)
	// TryAcquire takes n permits if they are free now, or returns ErrHeld
	// (wrapped); n outside [1, Capacity] is a *PermitError.
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

// PermitError reports a Semaphore request for a number of permits that can
// never be granted.
type PermitError struct {
	N, Capacity int64
}

func (e *PermitError) Error() string {
	return fmt.Sprintf("contend: cannot acquire %d permits of a semaphore of %d: must be between 1 and the capacity", e.N, e.Capacity)
}
