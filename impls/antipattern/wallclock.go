package antipattern

import (
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/refill"
)

// WallClockBucket is the wall-clock anti-pattern: it refills from the wall
// clock, time.Now().UnixNano() by default, instead of a monotonic clock.
// NewWallClockBucket ignores cfg.Clock; that is the mistake being kept.
//
// It is written the way the article's bucket is (tokens += (now-last) ×
// rate; last = now), in the lab's exact integer arithmetic so that the clock
// is the only thing wrong: under a mutex it reads the wall clock, adds the
// time since its previous reading (ignoring a negative difference) to the
// elapsed time it believes has passed, and decides with refill.Limit.Take
// on that. With a wall clock that never steps it is exactly the lab's mutex
// bucket: the sum of the differences is now - start.
//
// WRONG, because the wall clock can step (NTP, an administrator, a VM
// restored from a snapshot):
//
//   - A forward step of d adds d to the elapsed time at once: the bucket
//     earns Rate × d tokens that no real time paid for, and refills to
//     Capacity if Rate × d >= Capacity. A +1 h step on a drained bucket of
//     Capacity 100 at 1000/s grants 100 tokens at once although 0 s passed:
//     Capacity more than Capacity + Rate × elapsed allows.
//   - A backward step is ignored (the difference is negative) and moves the
//     last reading back with the clock, so the bucket goes on earning at the
//     real rate. But the forward step that corrects it is counted like any
//     other: steps that cancel out on the wall clock do not cancel in the
//     bucket. A -1 h step followed by a +1 h correction, both within the
//     same instant of real time, refill a drained bucket to Capacity. (Had
//     it computed elapsed as now - start, the pair would cancel, and the
//     backward step would only starve the bucket for an hour.)
//
// The lab's buckets are immune to both: they read a monotonic clock, and
// their state holds no time, so a reading that goes backwards only delays.
//
// Cost: one mutex and one wall-clock read (time.Now is about 60 ns here)
// per call; the clock is read under the lock, so that concurrent callers
// cannot present their readings out of order (which alone would look like
// small backward steps and double-count). Safe for concurrent use.
type WallClockBucket struct {
	limit refill.Limit
	wall  func() int64

	mu      sync.Mutex
	last    int64  // previous wall reading
	elapsed uint64 // sum of positive differences between readings, saturating at limit.MaxElapsed()
	tat     uint64 // see package refill
}

// NewWallClockBucket returns a full WallClockBucket on the system wall
// clock, time.Now().UnixNano(), or a *contend.ConfigError. cfg.Clock is
// ignored: that is the anti-pattern.
func NewWallClockBucket(cfg contend.BucketConfig) (*WallClockBucket, error) {
	return NewWallClockBucketWith(cfg, wallNow)
}

func wallNow() int64 { return time.Now().UnixNano() }

// NewWallClockBucketWith is NewWallClockBucket reading wall instead of the
// system wall clock, so that tests can step it. wall returns nanoseconds
// and may go backwards; it is called under the bucket's lock and must not
// call the bucket. cfg.Clock is ignored. A nil wall is the system wall
// clock.
func NewWallClockBucketWith(cfg contend.BucketConfig, wall func() int64) (*WallClockBucket, error) {
	l, err := cfg.Limit()
	if err != nil {
		return nil, err
	}
	if wall == nil {
		wall = wallNow
	}
	return &WallClockBucket{limit: l, wall: wall, last: wall()}, nil
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *WallClockBucket) TryTake(n int64) bool {
	if n <= 0 || uint64(n) > b.limit.Capacity() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.wall()
	if now > b.last {
		// tokens += (now - last) × rate, in elapsed time.
		d := uint64(now) - uint64(b.last)
		b.elapsed = min(b.elapsed+min(d, b.limit.MaxElapsed()), b.limit.MaxElapsed())
	}
	b.last = now // also when now < last: the correcting forward step will count
	next, ok := b.limit.Take(b.tat, b.elapsed, uint64(n))
	if ok {
		b.tat = next
	}
	return ok
}
