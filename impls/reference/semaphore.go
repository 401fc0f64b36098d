package reference

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/locallease"
)

// WeightedSemaphore is a [contend.Semaphore] on golang.org/x/sync/semaphore's
// Weighted: a permit count and a FIFO list of waiters, all under one
// sync.Mutex. Its zero value has no permits (every request is a
// *contend.PermitError): use NewWeightedSemaphore.
//
//   - Never more than Capacity permits held.
//   - FIFO: a waiter is served only when every waiter queued before it has
//     been, and Acquire and TryAcquire do not take free permits while
//     anyone waits, so a large request is not starved by small ones (at the
//     price of idling free permits behind it).
//   - A blocked Acquire whose ctx is done returns ctx.Err() (wrapped),
//     holding nothing; one whose ctx is done already fails even when
//     permits are free.
//   - No fencing: its tokens are unique, but not in grant order (see the
//     package documentation).
//
// Cost: every Acquire, TryAcquire and Release takes Weighted's mutex, also
// when permits are free; a waiter allocates a channel and a list element.
// Plus an atomic increment for the token and one 48-byte allocation for the
// lease.
type WeightedSemaphore struct {
	w        *semaphore.Weighted
	capacity int64
	tokens   atomic.Uint64
}

// NewWeightedSemaphore returns a WeightedSemaphore of capacity permits, all
// free, or a *contend.ConfigError if capacity <= 0 (Weighted panics on a
// negative size and is useless with none).
func NewWeightedSemaphore(capacity int64) (*WeightedSemaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, math.MaxInt64); err != nil {
		return nil, err
	}
	return &WeightedSemaphore{w: semaphore.NewWeighted(capacity), capacity: capacity}, nil
}

// Capacity returns the number of permits.
func (s *WeightedSemaphore) Capacity() int64 { return s.capacity }

// Acquire takes n permits, blocking until they are free (in FIFO order) or
// ctx is done.
func (s *WeightedSemaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	if err := s.w.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("reference: x/sync semaphore Acquire: %w", err)
	}
	return locallease.New((*semReleaser)(s), uint64(n), s.tokens.Add(1)), nil
}

// TryAcquire takes n permits if they are free and nobody waits, or returns
// contend.ErrHeld (wrapped); a ctx done already returns its error, as
// Weighted's Acquire does (its TryAcquire takes no ctx).
func (s *WeightedSemaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if n <= 0 || n > s.capacity {
		return nil, &contend.PermitError{N: n, Capacity: s.capacity}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reference: x/sync semaphore TryAcquire(%d): %w", n, err)
	}
	if !s.w.TryAcquire(n) {
		return nil, fmt.Errorf("reference: x/sync semaphore TryAcquire(%d): %w", n, contend.ErrHeld)
	}
	return locallease.New((*semReleaser)(s), uint64(n), s.tokens.Add(1)), nil
}

// semReleaser gives permits back for a lease; only locallease calls it.
type semReleaser WeightedSemaphore

func (r *semReleaser) LeaseName() string { return "reference: x/sync semaphore" }

func (r *semReleaser) ReleaseLease(n uint64) { r.w.Release(int64(n)) }
