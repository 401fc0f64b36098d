package antipattern

import (
	"math/big"
	"sync"

	"github.com/contend-lab/contend"
)

// GridBucket is the lab's own exact bucket as it was before it became the
// textbook bucket, kept as a control: it counts the tokens it has consumed,
// and tokens fall due on a fixed grid, one every T = 1e9/Rate ns from its
// construction. A full bucket keeps its progress towards the next grid
// point where the textbook bucket forfeits it, so after a full spell it
// grants its next token up to one interval early.
//
// WRONG over windows: it never grants more than Capacity + Rate × elapsed
// since construction, but over a window W it can grant Capacity + Rate × W
// + 1. On a limit of one per second (capacity 1) it grants at 0 s, 1.5 s
// and 2.0 s: two tokens 0.5 s apart.
//
// Cost: a mutex and exact rational arithmetic per call; for the
// demonstration only.
type GridBucket struct {
	capacity int64
	perNs    *big.Rat // tokens per nanosecond
	clock    contend.Clock
	start    int64

	mu       sync.Mutex
	consumed big.Int // tokens consumed since construction, forfeits included
}

// NewGridBucket returns a full GridBucket, or a *contend.ConfigError.
func NewGridBucket(cfg contend.BucketConfig) (*GridBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clk := cfg.ClockOrDefault()
	r := new(big.Rat).SetFloat64(cfg.Rate)
	return &GridBucket{capacity: cfg.Capacity, perNs: r.Quo(r, big.NewRat(1e9, 1)), clock: clk, start: clk.Now()}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *GridBucket) TryTake(n int64) bool {
	if n <= 0 || n > b.capacity {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	elapsed := max(b.clock.Now()-b.start, 0)
	// Earned = floor(elapsed × rate): the grid.
	e := new(big.Rat).Mul(b.perNs, new(big.Rat).SetInt64(elapsed))
	earned := new(big.Int).Quo(e.Num(), e.Denom())
	// Full: forfeit only whole tokens, keeping the partial one (the flaw).
	if b.consumed.Cmp(earned) < 0 {
		b.consumed.Set(earned)
	}
	// Held = capacity - (consumed - earned).
	held := new(big.Int).Sub(earned, &b.consumed)
	if held.Add(held, big.NewInt(b.capacity)).Cmp(big.NewInt(n)) < 0 {
		return false
	}
	b.consumed.Add(&b.consumed, big.NewInt(n))
	return true
}
