package redislab

import (
	"fmt"
	"sync"

	"github.com/contend-lab/contend"
)

// doneFlag records that a lease was released, and serialises Release calls
// on one lease so that a retry after a network error is the only one in
// flight.
type doneFlag struct {
	mu       sync.Mutex
	released bool
}

func (d *doneFlag) isReleased() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.released
}

// release runs fn once the lease is not yet released. fn reports whether
// the server held the lease. A definitive answer (held or not) marks the
// lease released; an error leaves it as it was, so the caller may retry.
func (d *doneFlag) release(what string, fn func() (bool, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.released {
		return fmt.Errorf("redislab: %s lease Release: %w", what, contend.ErrNotHeld)
	}
	held, err := fn()
	if err != nil {
		return fmt.Errorf("redislab: %s lease Release: %w", what, err)
	}
	d.released = true
	if !held {
		return fmt.Errorf("redislab: %s lease Release: %w", what, contend.ErrNotHeld)
	}
	return nil
}
