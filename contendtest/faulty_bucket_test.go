package contendtest_test

import (
	"errors"
	"math/big"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// faultyBucket is a mutex bucket with one deliberate fault, used to show
// that each conformance check (and the stress test's bounds) can fail.
type faultyBucket struct {
	mu       sync.Mutex
	p        bucketcore.Params
	fault    string
	rate     float64
	tat      uint64 // refill's state, for the faults that keep the lab's arithmetic
	consumed uint64 // tokens taken, for the faults that count tokens
	attempts int
	// for the "classic" fault: tokens and the last reading, the way a
	// typical hand-written bucket keeps them
	tokens int64
	last   int64
}

func (b *faultyBucket) TryTake(n int64) bool {
	var early int64 // the clock read before the lock, for the fault that decides on it
	if b.fault == "reads the clock before its lock" {
		early = b.p.Clock.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts++
	switch b.fault {
	case "accepts impossible requests":
		if n <= 0 {
			return true
		}
	case "grants every 100th attempt":
		if b.attempts%100 == 0 && b.p.Possible(n) {
			return true
		}
	}
	if !b.p.Possible(n) && b.fault != "accepts impossible requests" {
		return false
	}
	now := b.p.Clock.Now()
	if b.fault == "reads the clock before its lock" {
		now = early // stale by the time the lock is held
	}
	elapsed := b.p.Limit.Elapsed(b.p.Start, now)
	capacity := b.p.Limit.Capacity()
	switch b.fault {
	case "refills 1 ns early":
		// Once the bucket is short of full (a full bucket's reset absorbs a
		// constant offset of every reading), decide as if 1 ns later.
		if b.p.Limit.Tokens(b.tat, elapsed) < capacity {
			elapsed++
		}
	case "keeps tokens beyond capacity":
		earned := earnedTokens(elapsed, b.rate)
		if int64(capacity+earned-b.consumed) >= n {
			b.consumed += uint64(n)
			return true
		}
		return false
	case "refills on a grid fixed at construction":
		earned := earnedTokens(elapsed, b.rate)
		if capacity+earned-b.consumed > capacity {
			b.consumed = earned // full: forget the surplus, but keep the grid's partial token
		}
		if capacity+earned-b.consumed >= uint64(n) {
			b.consumed += uint64(n)
			return true
		}
		return false
	case "overflows int64 on long idle":
		// tokens = Capacity + elapsed × rate / 1e9 - consumed, in int64
		earned := int64(elapsed) * int64(b.rate+0.5) / 1e9
		if int64(capacity)+earned-int64(b.consumed) >= n {
			b.consumed += uint64(n)
			return true
		}
		return false
	case "refills from a clock that went backwards":
		if now > b.last {
			b.tokens = min(int64(capacity), b.tokens+int64(earnedTokens(uint64(now-b.last), b.rate)))
		}
		b.last = now // the classic mistake: a backward step moves last back
		if b.tokens >= n {
			b.tokens -= n
			return true
		}
		return false
	}
	take := uint64(n)
	if b.fault == "takes only one token" {
		take = 1
	}
	next, ok := b.p.Limit.Take(b.tat, elapsed, take)
	if ok {
		b.tat = next
	}
	return ok
}

// earnedTokens returns floor(elapsed × rate / 1e9), exactly.
func earnedTokens(elapsed uint64, rate float64) uint64 {
	r := new(big.Rat).SetFloat64(rate)
	r.Mul(r, new(big.Rat).SetFrac(new(big.Int).SetUint64(elapsed), big.NewInt(1e9)))
	return new(big.Int).Quo(r.Num(), r.Denom()).Uint64()
}

type faulty struct {
	name    string
	new     contendtest.NewBucketFunc
	failing []string // checks that must catch it
}

func newFaulty(fault string) contendtest.NewBucketFunc {
	return func(cfg contend.BucketConfig) (contend.Bucket, error) {
		switch fault {
		case "rejects MaxRate":
			if cfg.Rate >= contend.MaxRate {
				return nil, &contend.ConfigError{Field: "Rate", Value: cfg.Rate, Reason: "too fast"}
			}
		case "panics on bad config":
			if cfg.Capacity <= 0 {
				panic("capacity must be positive")
			}
		case "returns a plain error":
			if err := cfg.Validate(); err != nil {
				return nil, errors.New("bad config")
			}
		case "ignores the default clock":
			if cfg.Clock == nil {
				cfg.Clock = contend.NewManualClock(0)
			}
		}
		p, err := bucketcore.New(cfg)
		if err != nil {
			return nil, err
		}
		b := &faultyBucket{p: p, fault: fault, rate: cfg.Rate, tokens: cfg.Capacity, last: p.Start}
		if fault == "starts empty" {
			b.tat, _ = p.Limit.Take(0, 0, p.Limit.Capacity())
		}
		return b, nil
	}
}

func faultyBuckets() []faulty {
	return []faulty{
		{"starts empty", newFaulty("starts empty"), []string{"starts-full", "all-or-nothing", "capped-at-capacity", "synctest-bubble"}},
		{"takes only one token", newFaulty("takes only one token"), []string{"all-or-nothing", "refill-at-boundaries", "stress"}},
		{"refills 1 ns early", newFaulty("refills 1 ns early"), []string{"refill-at-boundaries", "rate-edges", "textbook"}},
		{"keeps tokens beyond capacity", newFaulty("keeps tokens beyond capacity"), []string{"capped-at-capacity", "decades-idle", "synctest-bubble", "textbook", "linearizable"}},
		{"accepts impossible requests", newFaulty("accepts impossible requests"), []string{"impossible-requests"}},
		{"overflows int64 on long idle", newFaulty("overflows int64 on long idle"), []string{"decades-idle"}},
		{"grants every 100th attempt", newFaulty("grants every 100th attempt"), []string{"clock-standing-still", "stress"}},
		{"refills from a clock that went backwards", newFaulty("refills from a clock that went backwards"), []string{"clock-backwards", "linearizable"}},
		{"refills on a grid fixed at construction", newFaulty("refills on a grid fixed at construction"), []string{"refill-after-take", "textbook"}},
		{"reads the clock before its lock", newFaulty("reads the clock before its lock"), []string{"stalled-reader"}},
		{"rejects MaxRate", newFaulty("rejects MaxRate"), []string{"rate-edges"}},
		{"panics on bad config", newFaulty("panics on bad config"), []string{"bad-config"}},
		{"returns a plain error", newFaulty("returns a plain error"), []string{"bad-config", "rate-edges"}},
		{"ignores the default clock", newFaulty("ignores the default clock"), []string{"synctest-bubble"}},
	}
}

// TestBucketChecksCatchFaults runs each check over buckets that are wrong
// in one specific way, so that every check is shown able to fail; and
// every check over the same bucket without a fault, so that what is
// caught is the fault.
func TestBucketChecksCatchFaults(t *testing.T) {
	checks := contendtest.BucketChecks()
	t.Run("control", func(t *testing.T) {
		for _, c := range checks {
			assert.NoError(t, c.Run(t, newFaulty("")), c.Name())
		}
	})
	for _, f := range faultyBuckets() {
		t.Run(f.name, func(t *testing.T) {
			for _, name := range f.failing {
				err := find(t, checks, name).Run(t, f.new)
				if assert.Error(t, err, "check %q must catch a bucket that %s", name, f.name) {
					t.Logf("%s caught: %s", name, firstLine(err.Error()))
				}
			}
		})
	}
}
