package keyed

import (
	"sync"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
)

// The baselines BenchmarkKeyed compares the Limiter's map with: one
// impls/cas bucket per uint64 key, in a sync.Map or in a map behind one
// sync.Mutex, kept forever. They are not for use: they never forget a key,
// and offer Allow only. Their zero values deny every request.

// syncMap is the sync-map baseline. Loading a uint64 key converts it to
// an interface that does not escape; storing a new key boxes it. A new
// key may build a bucket that loses the LoadOrStore race and is dropped.
type syncMap struct {
	cfg contend.BucketConfig
	m   sync.Map // uint64 -> *cas.Bucket
}

func (l *syncMap) Allow(key uint64) bool {
	v, ok := l.m.Load(key)
	if !ok {
		nb, err := cas.NewBucket(l.cfg)
		if err != nil { // only the zero value's configuration is invalid
			return false
		}
		v, _ = l.m.LoadOrStore(key, nb)
	}
	return v.(*cas.Bucket).TryTake(1)
}

func (l *syncMap) Len() int {
	n := 0
	l.m.Range(func(_, _ any) bool { n++; return true })
	return n
}

// mutexMap is the mutex-map baseline: the lock is held for the lookup (and
// the insertion of a new key) only, not for TryTake.
type mutexMap struct {
	cfg contend.BucketConfig
	mu  sync.Mutex
	m   map[uint64]*cas.Bucket
}

func (l *mutexMap) Allow(key uint64) bool {
	l.mu.Lock()
	b, ok := l.m[key]
	if !ok {
		var err error
		if b, err = cas.NewBucket(l.cfg); err != nil || l.m == nil { // the zero value
			l.mu.Unlock()
			return false
		}
		l.m[key] = b
	}
	l.mu.Unlock()
	return b.TryTake(1)
}

func (l *mutexMap) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
