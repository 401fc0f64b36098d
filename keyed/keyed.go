// Package keyed limits requests per key: each key gets its own token bucket
// (the lab's lock-free bucket from impls/cas), created on the key's first
// request, so one busy key cannot spend another key's tokens.
//
// The package holds three Limiters that differ only in the concurrent map
// that finds a key's bucket, so that benchmarks can compare the maps:
//
//   - XsyncMap: github.com/puzpuzpuz/xsync/v3 MapOf, a hash table whose
//     reads take no lock and write nothing shared.
//   - SyncMap: the standard library's sync.Map.
//   - MutexMap: a plain map behind one sync.Mutex; every lookup takes the lock.
//
// Guarantees, for all three: each key's bucket is exactly the
// cas.Bucket of the Limiter's BucketConfig (linearizable, never grants
// more than Capacity + Rate × elapsed), where elapsed runs from the key's
// first request: a new key starts full. When goroutines race on a new key,
// exactly one bucket is kept and every request uses it, so the race cannot
// grant a key more than one burst.
//
// Keys are uint64. Hashing a uint64 costs the same few instructions in each
// map, so the benchmarks compare synchronisation, not hash functions (string
// keys would be hashed by three different functions). Callers with string
// keys can hash them to uint64 themselves (for example with hash/maphash),
// accepting that two colliding keys share a bucket.
//
// Memory: a Limiter keeps a bucket for every key it has seen, forever (about
// 100 bytes per key, with the map's overhead). It suits a bounded key space;
// an unbounded one needs eviction of idle (full) buckets, which this package
// does not do.
package keyed

import (
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/puzpuzpuz/xsync/v3"
)

// Limiter allows or denies one request for a key.
type Limiter interface {
	// Allow takes one token from key's bucket and reports whether it could.
	// It never waits.
	Allow(key uint64) bool
}

// template is a validated BucketConfig, from which every key's bucket is made.
type template struct {
	cfg contend.BucketConfig
}

func newTemplate(cfg contend.BucketConfig) (template, error) {
	if err := cfg.Validate(); err != nil {
		return template{}, err
	}
	return template{cfg}, nil
}

// bucket returns a new full bucket, or nil if the configuration were
// invalid: it cannot be, since newTemplate validated it, but a nil is
// handled by denying rather than by panicking.
func (t template) bucket() *cas.Bucket {
	b, err := cas.NewBucket(t.cfg)
	if err != nil {
		return nil
	}
	return b
}

// XsyncMap is a Limiter on an xsync.MapOf. A request for a known key is one
// lock-free map read plus the bucket's TryTake, and allocates nothing. A new
// key is inserted under the map's per-bucket lock (LoadOrTryCompute), which
// also makes the creation race-free: one bucket per key. The zero value is
// a valid Limiter that denies every request (as x/time/rate's zero Limiter
// does); make one with NewXsyncMap.
type XsyncMap struct {
	t template
	m *xsync.MapOf[uint64, *cas.Bucket]
}

// NewXsyncMap returns an XsyncMap whose keys get buckets configured by cfg,
// or a *contend.ConfigError if cfg is invalid.
func NewXsyncMap(cfg contend.BucketConfig) (*XsyncMap, error) {
	t, err := newTemplate(cfg)
	if err != nil {
		return nil, err
	}
	return &XsyncMap{t: t, m: xsync.NewMapOf[uint64, *cas.Bucket]()}, nil
}

// Allow takes one token from key's bucket.
func (l *XsyncMap) Allow(key uint64) bool {
	if l.m == nil { // the zero XsyncMap
		return false
	}
	b, ok := l.m.Load(key)
	if !ok {
		b, _ = l.m.LoadOrTryCompute(key, func() (*cas.Bucket, bool) {
			nb := l.t.bucket()
			return nb, nb == nil
		})
		if b == nil {
			return false
		}
	}
	return b.TryTake(1)
}

// Len returns the number of keys with a bucket.
func (l *XsyncMap) Len() int {
	if l.m == nil {
		return 0
	}
	return l.m.Size()
}

// SyncMap is a Limiter on a sync.Map. A request for a known key is one
// sync.Map read (lock-free once the key has settled in the read-only part)
// plus the bucket's TryTake. A new key may build a bucket that loses the
// LoadOrStore race and is dropped: only the stored one is ever used.
//
// sync.Map takes keys as `any`. Converting the uint64 key for Load does not
// allocate (the interface does not escape; TestZeroAllocsKnownKey checks it);
// storing a new key boxes it, once per key. The zero value is a valid
// Limiter that denies every request; make one with NewSyncMap.
type SyncMap struct {
	t template
	m sync.Map // uint64 -> *cas.Bucket
}

// NewSyncMap returns a SyncMap whose keys get buckets configured by cfg, or a
// *contend.ConfigError if cfg is invalid.
func NewSyncMap(cfg contend.BucketConfig) (*SyncMap, error) {
	t, err := newTemplate(cfg)
	if err != nil {
		return nil, err
	}
	return &SyncMap{t: t}, nil
}

// Allow takes one token from key's bucket.
func (l *SyncMap) Allow(key uint64) bool {
	v, ok := l.m.Load(key)
	if !ok {
		nb := l.t.bucket()
		if nb == nil {
			return false
		}
		v, _ = l.m.LoadOrStore(key, nb)
	}
	return v.(*cas.Bucket).TryTake(1)
}

// Len returns the number of keys with a bucket. It walks the map.
func (l *SyncMap) Len() int {
	n := 0
	l.m.Range(func(_, _ any) bool { n++; return true })
	return n
}

// MutexMap is a Limiter on a map behind one sync.Mutex. Every request takes
// the lock for the lookup (and the insertion of a new key), then releases it
// before TryTake, so the lock is held for a map access only. All goroutines
// still contend for that one lock. The zero value is a valid Limiter that
// denies every request; make one with NewMutexMap.
type MutexMap struct {
	t  template
	mu sync.Mutex
	m  map[uint64]*cas.Bucket
}

// NewMutexMap returns a MutexMap whose keys get buckets configured by cfg, or
// a *contend.ConfigError if cfg is invalid.
func NewMutexMap(cfg contend.BucketConfig) (*MutexMap, error) {
	t, err := newTemplate(cfg)
	if err != nil {
		return nil, err
	}
	return &MutexMap{t: t, m: make(map[uint64]*cas.Bucket)}, nil
}

// Allow takes one token from key's bucket.
func (l *MutexMap) Allow(key uint64) bool {
	l.mu.Lock()
	b, ok := l.m[key]
	if !ok {
		b = l.t.bucket()
		if b == nil {
			l.mu.Unlock()
			return false
		}
		l.m[key] = b
	}
	l.mu.Unlock()
	return b.TryTake(1)
}

// Len returns the number of keys with a bucket.
func (l *MutexMap) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// Impl is one Limiter implementation, by the name benchmarks give it.
type Impl struct {
	Name string // benchmark name: lower case, no trailing -digits
	New  func(contend.BucketConfig) (Limiter, error)
}

// Impls returns the package's Limiters: xsync-mapof, sync-map, mutex-map.
func Impls() []Impl {
	return []Impl{
		{"xsync-mapof", adapt(NewXsyncMap)},
		{"sync-map", adapt(NewSyncMap)},
		{"mutex-map", adapt(NewMutexMap)},
	}
}

// adapt returns newLimiter with the Limiter interface as its result type,
// never a non-nil interface holding a nil pointer.
func adapt[T Limiter](newLimiter func(contend.BucketConfig) (T, error)) func(contend.BucketConfig) (Limiter, error) {
	return func(cfg contend.BucketConfig) (Limiter, error) {
		l, err := newLimiter(cfg)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

// Interface checks.
var (
	_ Limiter = (*XsyncMap)(nil)
	_ Limiter = (*SyncMap)(nil)
	_ Limiter = (*MutexMap)(nil)
)
