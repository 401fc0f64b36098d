package antipattern

import (
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// PerGoroutineBucket is the "thread-local" anti-pattern: every goroutine
// that calls TryTake gets its own private bucket, with the full Capacity and
// Rate of the configuration, made on its first call.
//
// WRONG: there is no shared limit. Each private bucket is exact on its
// own (the lab's mutex bucket), but N goroutines together are granted up to
// N × (Capacity + Rate × elapsed) tokens, N times the configured limit. At a
// frozen clock, 10 goroutines with Capacity 100 get 1000 tokens.
//
// It also leaks: a private bucket is never freed, because nothing tells it
// that its goroutine has exited (goroutine ids are not reused, so the map
// only grows, by one bucket per goroutine that ever called TryTake).
//
// Cost: identifying the goroutine formats and parses runtime.Stack's
// header, then a sync.Map lookup, then the private bucket's uncontended
// mutex. It is safe for concurrent use and free of data races.
type PerGoroutineBucket struct {
	p       bucketcore.Params
	buckets sync.Map // goroutine id (uint64) -> *privateBucket
}

// privateBucket is one goroutine's bucket: the lab's mutex bucket on the
// shared Params. It starts full (state 0) whenever it is made: a full
// bucket earns nothing, so its start needs no reading of its own.
type privateBucket struct {
	mu  sync.Mutex
	tat uint64 // see package refill
}

// NewPerGoroutineBucket validates cfg and returns a PerGoroutineBucket, or
// a *contend.ConfigError. No private bucket exists until a goroutine calls
// TryTake; each starts full when it is made.
func NewPerGoroutineBucket(cfg contend.BucketConfig) (*PerGoroutineBucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	return &PerGoroutineBucket{p: p}, nil
}

// TryTake takes n tokens from the calling goroutine's private bucket, or
// none. It returns false, changing nothing, when n <= 0 or n > Capacity.
func (b *PerGoroutineBucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	pb := b.private()
	pb.mu.Lock()
	defer pb.mu.Unlock()
	next, ok := b.p.Limit.Take(pb.tat, b.p.Elapsed(), uint64(n))
	if ok {
		pb.tat = next
	}
	return ok
}

// Buckets returns the number of private buckets made so far: one per
// goroutine that has called TryTake.
func (b *PerGoroutineBucket) Buckets() int {
	count := 0
	b.buckets.Range(func(_, _ any) bool { count++; return true })
	return count
}

// private returns the calling goroutine's bucket, making it on first use.
func (b *PerGoroutineBucket) private() *privateBucket {
	id := goid()
	if v, ok := b.buckets.Load(id); ok {
		return v.(*privateBucket)
	}
	v, _ := b.buckets.LoadOrStore(id, new(privateBucket))
	return v.(*privateBucket)
}
