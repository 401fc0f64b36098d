// Package mylib is a library written outside the contend lab, as a user
// would write one: a striped counter and a FIFO lock. Its tests check both
// with package contendtest, from this separate module.
package mylib

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/contend-lab/contend"
)

// Counter is a counter striped over padded cells: Add picks a cell at
// random, Load sums them. No Add is lost, but a Load during Adds may
// return a sum the counter never held.
type Counter struct {
	cells [8]struct {
		atomic.Int64
		_ [56]byte // one cell per cache line
	}
}

// Add adds delta to a random cell.
func (c *Counter) Add(delta int64) { c.cells[rand.N(len(c.cells))].Add(delta) }

// Load returns the sum of the cells.
func (c *Counter) Load() int64 {
	var sum int64
	for i := range c.cells {
		sum += c.cells[i].Load()
	}
	return sum
}

// Lock is a FIFO lock on golang.org/x/sync/semaphore's Weighted of one
// permit, with fencing tokens. Make it with NewLock.
type Lock struct {
	w      *semaphore.Weighted
	tokens uint64 // the last token, drawn by the holder only
}

// NewLock returns a free Lock.
func NewLock() *Lock { return &Lock{w: semaphore.NewWeighted(1)} }

// Acquire waits for the lock, in arrival order, or returns ctx.Err().
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := l.w.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	return l.lease(), nil
}

// TryAcquire takes the lock if it is free and nobody waits, or returns
// contend.ErrHeld.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !l.w.TryAcquire(1) {
		return nil, contend.ErrHeld
	}
	return l.lease(), nil
}

// lease draws the next token: only the holder draws one, so the tokens
// grow from holder to holder.
func (l *Lock) lease() *lease {
	l.tokens++
	return &lease{l: l, token: l.tokens}
}

type lease struct {
	l        *Lock
	token    uint64
	released atomic.Bool
}

func (s *lease) Token() uint64 { return s.token }

func (s *lease) Release(context.Context) error {
	if !s.released.CompareAndSwap(false, true) {
		return contend.ErrNotHeld
	}
	s.l.w.Release(1)
	return nil
}

func (s *lease) Extend(_ context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("mylib: Extend needs a positive ttl")
	}
	if s.released.Load() {
		return contend.ErrNotHeld
	}
	return nil
}

func (s *lease) TTL() (time.Duration, bool) { return 0, false }

// The contracts, checked by the compiler.
var (
	_ contend.Counter = (*Counter)(nil)
	_ contend.Lock    = (*Lock)(nil)
)
