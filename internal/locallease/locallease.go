// Package locallease is the contend.Lease of every in-process lock and
// semaphore of the lab: a fencing token, a release that happens at most
// once, and no expiry. Each lock package keeps only what differs, the
// give-back of what the lease holds (Releaser).
package locallease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/contend-lab/contend"
)

// Releaser gives back what a lease holds; arg is the value the lease was
// made with (a ticket, a number of permits, or unused). A lock package
// implements it on an unexported type, so that only a lease can call it.
type Releaser interface {
	ReleaseLease(arg uint64)
	// LeaseName prefixes the lease's errors: "spin", "atomic semaphore".
	LeaseName() string
}

// Lease is a contend.Lease that never expires.
//
// Release is safe for concurrent use: of any number of concurrent or
// repeated calls, exactly one gives back what the lease holds and returns
// nil; the others return contend.ErrNotHeld (wrapped) and change nothing.
// Cost: one 48-byte allocation per lease (made by New; the name lives with
// the owner, not in every lease), one CAS to release.
type Lease struct {
	owner    Releaser
	arg      uint64
	token    uint64
	released atomic.Bool
}

// New returns a held lease with the given fencing token, whose Release
// calls owner.ReleaseLease(arg) once.
func New(owner Releaser, arg, token uint64) *Lease {
	return &Lease{owner: owner, arg: arg, token: token}
}

// ErrBadTTL is returned (wrapped) by Extend when ttl is not positive.
var ErrBadTTL = errors.New("ttl must be positive")

// Token returns the lease's fencing token.
func (s *Lease) Token() uint64 { return s.token }

// Release gives back what the lease holds, once; see Lease.
func (s *Lease) Release(context.Context) error {
	if !s.released.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: Release: %w", s.owner.LeaseName(), contend.ErrNotHeld)
	}
	s.owner.ReleaseLease(s.arg)
	return nil
}

// Extend accepts any positive ttl while the lease is held (it never
// expires, and stays without expiry); ttl <= 0 is ErrBadTTL, and a
// released lease is contend.ErrNotHeld, both wrapped.
func (s *Lease) Extend(_ context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%s: Extend(%v): %w", s.owner.LeaseName(), ttl, ErrBadTTL)
	}
	if s.released.Load() {
		return fmt.Errorf("%s: Extend: %w", s.owner.LeaseName(), contend.ErrNotHeld)
	}
	return nil
}

// TTL reports that the lease never expires.
func (s *Lease) TTL() (time.Duration, bool) { return 0, false }

// Done reports whether done, a ctx.Done() channel, is closed, without
// blocking; a nil done (a ctx that can never end) is never closed. An
// Acquire calls it just after taking what it waited for: a ctx that ended
// before the take fails the Acquire (go.dev/issue/63615).
func Done(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}
