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
// Under a mutex it reads the wall clock, adds the time since its previous
// reading (ignoring a negative difference) to the elapsed time it believes
// has passed, and decides with refill.Limit.Take on that.
//
// WRONG, because the wall clock can step: a forward step refills it at
// once, and a backward step followed by its correction counts the same
// time twice. Both over-grant (see the package documentation).
//
// Cost: one mutex and one wall-clock read per call; the clock is read under
// the lock, so that concurrent callers cannot present their readings out
// of order (which alone would look like small backward steps and
// double-count). Safe for concurrent use.
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
