package harness

import (
	"errors"
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
	"github.com/contend-lab/contend/refill"
)

// faultyBucket is a mutex bucket with one deliberate fault, used to show
// that each conformance check (and the stress test's bounds) can fail.
type faultyBucket struct {
	mu       sync.Mutex
	p        bucketcore.Params
	fault    string
	consumed uint64
	attempts int
	// for the "classic" fault: tokens and the last reading, the way a
	// typical hand-written bucket keeps them
	tokens int64
	last   int64
}

func (b *faultyBucket) TryTake(n int64) bool {
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
	elapsed := refill.Elapsed(b.p.Start, now)
	switch b.fault {
	case "refills 1 ns early":
		elapsed++
	case "keeps tokens beyond capacity":
		earned := b.p.Sched.Earned(elapsed)
		if int64(b.p.Capacity+earned-b.consumed) >= n {
			b.consumed += uint64(n)
			return true
		}
		return false
	case "overflows int64 on long idle":
		// tokens = Capacity + elapsed × rate / 1e9 - consumed, in int64
		earned := int64(elapsed) * int64(b.p.Sched.Rate()+0.5) / 1e9
		if int64(b.p.Capacity)+earned-int64(b.consumed) >= n {
			b.consumed += uint64(n)
			return true
		}
		return false
	case "refills from a clock that went backwards":
		if now > b.last {
			b.tokens = min(int64(b.p.Capacity), b.tokens+int64(b.p.Sched.Earned(uint64(now-b.last))))
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
	next, ok := b.p.Sched.Take(b.consumed, elapsed, take, b.p.Capacity)
	if ok {
		b.consumed = next
	}
	return ok
}

type faulty struct {
	name    string
	new     NewBucketFunc
	failing []string // checks that must catch it
}

func newFaulty(fault string) NewBucketFunc {
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
		b := &faultyBucket{p: p, fault: fault, tokens: cfg.Capacity, last: p.Start}
		if fault == "starts empty" {
			b.consumed = p.Capacity
		}
		return b, nil
	}
}

func faultyBuckets() []faulty {
	return []faulty{
		{"starts empty", newFaulty("starts empty"), []string{"starts-full", "all-or-nothing", "capped-at-capacity", "synctest-bubble"}},
		{"takes only one token", newFaulty("takes only one token"), []string{"all-or-nothing", "refill-at-boundaries"}},
		{"refills 1 ns early", newFaulty("refills 1 ns early"), []string{"refill-at-boundaries", "rate-edges"}},
		{"keeps tokens beyond capacity", newFaulty("keeps tokens beyond capacity"), []string{"capped-at-capacity", "decades-idle", "synctest-bubble"}},
		{"accepts impossible requests", newFaulty("accepts impossible requests"), []string{"impossible-requests"}},
		{"overflows int64 on long idle", newFaulty("overflows int64 on long idle"), []string{"decades-idle"}},
		{"grants every 100th attempt", newFaulty("grants every 100th attempt"), []string{"clock-standing-still"}},
		{"refills from a clock that went backwards", newFaulty("refills from a clock that went backwards"), []string{"clock-backwards"}},
		{"rejects MaxRate", newFaulty("rejects MaxRate"), []string{"rate-edges"}},
		{"panics on bad config", newFaulty("panics on bad config"), []string{"bad-config"}},
		{"returns a plain error", newFaulty("returns a plain error"), []string{"bad-config", "rate-edges"}},
		{"ignores the default clock", newFaulty("ignores the default clock"), []string{"synctest-bubble"}},
	}
}
