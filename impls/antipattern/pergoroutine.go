package antipattern

import (
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/mutex"
)

// PerGoroutineBucket is the "thread-local" anti-pattern: every goroutine
// that calls TryTake gets its own private bucket, with the full Capacity and
// Rate of the configuration, made on its first call.
//
// WRONG: there is no shared limit. Each private bucket is exact on its
// own (it is a mutex.Bucket), but N goroutines together are granted up to
// N × (Capacity + Rate × elapsed) tokens, N times the configured limit. At a
// frozen clock, 10 goroutines with Capacity 100 get 1000 tokens.
//
// It also leaks: a private bucket is never freed, because nothing tells it
// that its goroutine has exited (goroutine ids are not reused, so the map
// only grows, by one bucket per goroutine that ever called TryTake).
//
// Cost: identifying the goroutine parses runtime.Stack (about 3 µs), then
// a sync.Map lookup, then the private bucket's uncontended mutex. It is safe
// for concurrent use and free of data races.
type PerGoroutineBucket struct {
	cfg     contend.BucketConfig
	buckets sync.Map // goroutine id (uint64) -> *mutex.Bucket
}

// NewPerGoroutineBucket validates cfg and returns a PerGoroutineBucket, or
// a *contend.ConfigError. No private bucket exists until a goroutine calls
// TryTake; each starts full when it is made.
func NewPerGoroutineBucket(cfg contend.BucketConfig) (*PerGoroutineBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Clock = cfg.ClockOrDefault()
	return &PerGoroutineBucket{cfg: cfg}, nil
}

// TryTake takes n tokens from the calling goroutine's private bucket, or
// none. It returns false, changing nothing, when n <= 0 or n > Capacity.
func (b *PerGoroutineBucket) TryTake(n int64) bool {
	if n <= 0 || n > b.cfg.Capacity {
		return false
	}
	return b.private().TryTake(n)
}

// Buckets returns the number of private buckets made so far: one per
// goroutine that has called TryTake. For tests and reports.
func (b *PerGoroutineBucket) Buckets() int {
	count := 0
	b.buckets.Range(func(_, _ any) bool { count++; return true })
	return count
}

// private returns the calling goroutine's bucket, making it on first use.
func (b *PerGoroutineBucket) private() *mutex.Bucket {
	id := goid()
	if v, ok := b.buckets.Load(id); ok {
		return v.(*mutex.Bucket)
	}
	mb, err := mutex.NewBucket(b.cfg)
	if err != nil { // unreachable: cfg was validated by NewPerGoroutineBucket
		panic("antipattern: validated config rejected: " + err.Error())
	}
	v, _ := b.buckets.LoadOrStore(id, mb)
	return v.(*mutex.Bucket)
}
