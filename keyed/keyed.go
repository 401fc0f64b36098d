// Package keyed limits requests per key: each key (a client's address, an
// API token) gets its own exact token bucket, made full on the key's first
// request, so one busy key cannot spend another's tokens.
//
// [Limiter] is generic over the key, offers per key what contend.Limiter
// offers per bucket (TryTake, Delay for a Retry-After, Reserve, Wait), and
// forgets idle keys without changing any decision.
//
// # Eviction never changes a decision
//
// Every key's bucket shares the Limiter's configuration and its time
// origin, so a key's whole state is one word, refill's theoretical arrival
// time tat, and a key that has no bucket behaves as a bucket in state 0,
// which is full at every reading. A bucket full at a reading e (tat <= e/u)
// makes, at e and at every later reading, exactly the decisions of state 0:
// a request for n is granted by both (tat - (Capacity-n)×P <= e/u), and
// the grant stores max(tat, ceil(e/u)) + n×P = ceil(e/u) + n×P in both.
// Delay, Tokens and bookings follow from the same comparisons. So a sweep
// may drop any bucket that is full at its reading e, and the key's next
// request, whose reading comes later (it loads the new bucket after the
// sweep stored its verdict), sees no difference. One reading, taken before
// the sweep loads any state, serves the whole sweep: a state stored after
// e by a grant lies past e/u, so it is never judged full at e. A sweep
// judges at its reading minus the idle time (WithIdle), an earlier reading
// still: a bucket full then, with nothing granted since, has been full
// for that long.
//
// A request may hold the bucket it looked up while a sweep drops it. So a
// sweep first marks the bucket retired (refill.Retired, a state no bucket
// reaches), with the same compare-and-swap or lock that its requests use:
// a request that meets the mark, or loses its compare-and-swap to it, looks
// the key up again and gets a new bucket; none can grant on a dropped one.
// A bucket with tokens booked ahead (Reserve, Wait) is not full until they
// are due, so a booking is never dropped while it can be cancelled.
//
// # Memory
//
// Per key: the map entry (the key and a pointer: 24 bytes for a string
// key, 16 for an integer), a 16-byte bucket, a string key's bytes (copied
// when the bucket is made, so that a key sliced from a request buffer does
// not keep the buffer alive; rounded up to the allocator's size class),
// and the key's share of the hash table, 64 bytes per 5 keys at a load
// between 3/8 and 3/4: 17 to 35 bytes. For a string key of up to 16 bytes
// that is at most 24 + 16 + 16 + 35 = 91 bytes; briefly more while the
// table grows, or while a sweep walks a table that has since grown
// (BenchmarkKeyedMemory measures it).
//
// A sweep runs, on a goroutine of its own, once the number of keys made
// since the last one reaches the number that one left behind (at least
// WithSweepEvery's, 1024 by default). It keeps the buckets that have not
// been full for the idle time (WithIdle, a minute by default): keys
// granted within the last Capacity/Rate + idle, or with bookings
// outstanding. So the map holds at most twice max(SweepEvery, the keys
// active so at the last sweep), plus the keys made while a sweep runs.
// Nothing runs between requests: an idle Limiter keeps what it has until
// the next key arrives, or Sweep is called. A shorter idle time saves
// memory and costs CPU when keys come back: each return makes a new entry
// and bucket, and makes count towards the next sweep.
package keyed

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/internal/bucketcore"
)

// Strategy is how each key's bucket synchronises its state word.
type Strategy int

const (
	// CAS updates the word by compare-and-swap, as impls/cas's bucket
	// (registry name "atomic") does: lock-free, and a denial writes
	// nothing. The default.
	CAS Strategy = iota
	// Mutex guards the word with a sync.Mutex per key, as impls/mutex's
	// bucket does: requests for one key queue on its lock.
	Mutex
)

// String returns the strategy's registry name.
func (s Strategy) String() string {
	switch s {
	case CAS:
		return "atomic"
	case Mutex:
		return "mutex"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Option configures a Limiter beyond its buckets' configuration.
type Option func(*options)

type options struct {
	strategy   Strategy
	sweepEvery int
	idle       time.Duration
}

// WithStrategy sets how each key's bucket synchronises (CAS by default).
// Other strategies of the lab are not offered per key: rwmutex's read lock
// costs a denial more than CAS's load does, reentrancy has no use here,
// and pershard's per-CPU caches would cost every key S × 128 bytes and
// its exactness.
func WithStrategy(s Strategy) Option { return func(o *options) { o.strategy = s } }

// WithSweepEvery sets the fewest new keys between two automatic sweeps
// (1024 by default; see the package documentation). n <= 0 turns
// automatic sweeps off: the Limiter then keeps every key until Sweep is
// called.
func WithSweepEvery(n int) Option { return func(o *options) { o.sweepEvery = n } }

// DefaultSweepEvery is WithSweepEvery's default.
const DefaultSweepEvery = 1024

// WithIdle sets how long a bucket must have been full before a sweep drops
// it (DefaultIdle by default; 0: as soon as it is full). Dropping sooner
// saves memory and costs a new map entry and bucket when the key returns:
// a key asked for less often than Capacity/Rate + d is made again each
// time. A negative d is a *contend.ConfigError.
func WithIdle(d time.Duration) Option { return func(o *options) { o.idle = d } }

// DefaultIdle is WithIdle's default: a client gone for a minute is
// forgotten.
const DefaultIdle = time.Minute

// Limiter is one exact token bucket per key, all configured alike; see the
// package documentation for eviction and memory. Its methods are safe for
// concurrent use. A request for a key that has a bucket allocates nothing;
// a new key allocates its map entry and bucket.
//
// Per key, it is what impls/cas (or, WithStrategy(Mutex), impls/mutex)
// is: linearizable, the textbook bucket's decisions, and the
// contend.Limiter semantics for Delay, Reserve and Wait. A new key starts
// full; when goroutines race on a new key, one bucket is kept and every
// request uses it.
//
// The zero Limiter has capacity 0: it denies every request, holds no key,
// and Delay, Reserve and Wait return a *contend.TokenError. Make one with
// New.
type Limiter[K comparable] struct {
	p          bucketcore.Params // shared by every key: limit, clock, origin
	m          *xsync.MapOf[K, *cell]
	locked     bool   // Strategy Mutex
	sweepEvery int64  // <= 0: no automatic sweeps
	idle       uint64 // ns a bucket must have been full before a sweep drops it
	made       atomic.Int64
	next       atomic.Int64 // made count that starts the next sweep
	sweeping   atomic.Bool
}

// cell is one key's bucket: its state word and, for Strategy Mutex, the
// lock that guards it (atomic loads and stores under it, so that a cell
// looks the same to both strategies' code).
type cell struct {
	w  atomic.Uint64
	mu sync.Mutex
}

// New returns a Limiter whose keys get buckets configured by cfg, or a
// *contend.ConfigError for an invalid cfg or option.
func New[K comparable](cfg contend.BucketConfig, opts ...Option) (*Limiter[K], error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	o := options{strategy: CAS, sweepEvery: DefaultSweepEvery, idle: DefaultIdle}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.strategy != CAS && o.strategy != Mutex:
		return nil, &contend.ConfigError{Field: "Strategy", Value: o.strategy, Reason: "must be keyed.CAS or keyed.Mutex", Of: "keyed option"}
	case o.idle < 0:
		return nil, &contend.ConfigError{Field: "Idle", Value: o.idle, Reason: "must not be negative", Of: "keyed option"}
	}
	l := &Limiter[K]{p: p, m: xsync.NewMapOf[K, *cell](), locked: o.strategy == Mutex,
		sweepEvery: int64(o.sweepEvery), idle: uint64(o.idle)}
	l.next.Store(l.sweepEvery)
	return l, nil
}

// Capacity returns the most tokens a key's bucket holds.
func (l *Limiter[K]) Capacity() int64 { return l.p.Capacity() }

// Rate returns the refill rate of a key's bucket, in tokens per second.
func (l *Limiter[K]) Rate() float64 { return l.p.Rate() }

// Allow takes one token from key's bucket and reports whether it could.
// It never waits.
func (l *Limiter[K]) Allow(key K) bool { return l.TryTake(key, 1) }

// TryTake takes n tokens from key's bucket, or none, and reports whether it
// did. It never waits. n <= 0 or n > Capacity returns false, changing
// nothing.
func (l *Limiter[K]) TryTake(key K, n int64) bool {
	if !l.p.Possible(n) { // also the zero Limiter
		return false
	}
	c, found := l.m.Load(key)
	if !found {
		c = l.make(key)
	}
	for {
		// A retired bucket (dropped by a sweep) denies; the mark is
		// checked only then, and the key is made again.
		if !l.locked {
			if l.p.TakeWord(&c.w, uint64(n)) {
				return true
			}
			if c.w.Load() != bucketcore.Retired {
				return false
			}
			c = l.make(key)
			continue
		}
		c.mu.Lock()
		tat := c.w.Load()
		if tat == bucketcore.Retired {
			c.mu.Unlock()
			c = l.make(key)
			continue
		}
		next, ok := l.p.Limit.Take(tat, l.p.Elapsed(), uint64(n))
		if ok {
			c.w.Store(next)
		}
		c.mu.Unlock()
		return ok
	}
}

// Tokens returns the whole tokens key's bucket holds now, negative while
// bookings owe more than it holds (contend.Limiter.Tokens); Capacity for a
// key without a bucket. It makes no bucket.
func (l *Limiter[K]) Tokens(key K) int64 {
	if l.m == nil {
		return 0
	}
	c, ok := l.m.Load(key)
	if !ok {
		return l.p.Capacity()
	}
	return l.p.Tokens(l.cell(c)) // a retired cell reads as a new one: Capacity
}

// Delay returns how long from now until n tokens are due in key's bucket,
// without taking them: 0 if TryTake(key, n) would be granted now. n <= 0 or
// n > Capacity is a *contend.TokenError. It makes no bucket.
func (l *Limiter[K]) Delay(key K, n int64) (time.Duration, error) {
	if !l.p.Possible(n) {
		return l.p.Delay(bucketcore.Cell{}, n) // the *TokenError
	}
	c, ok := l.m.Load(key)
	if !ok {
		return 0, nil // a new bucket is full
	}
	d, err := l.p.Delay(l.cell(c), n)
	if err == bucketcore.ErrRetired {
		return 0, nil
	}
	return d, err
}

// Reserve books n tokens in key's bucket, due now or later; see
// contend.Limiter.Reserve.
func (l *Limiter[K]) Reserve(key K, n int64) (contend.Reservation, error) {
	if !l.p.Possible(n) {
		return l.p.Reserve(bucketcore.Cell{}, n) // the *TokenError
	}
	for {
		r, err := l.p.Reserve(l.cell(l.get(key)), n)
		if err != bucketcore.ErrRetired {
			return r, err
		}
	}
}

// Wait books n tokens in key's bucket and blocks on a timer until they are
// due; see contend.Limiter.Wait.
func (l *Limiter[K]) Wait(ctx context.Context, key K, n int64) error {
	if !l.p.Possible(n) {
		return l.p.Wait(ctx, bucketcore.Cell{}, n) // the *TokenError
	}
	for {
		err := l.p.Wait(ctx, l.cell(l.get(key)), n)
		if err != bucketcore.ErrRetired {
			return err
		}
	}
}

// Len returns the number of keys that have a bucket.
func (l *Limiter[K]) Len() int {
	if l.m == nil {
		return 0
	}
	return l.m.Size()
}

// Sweep drops every bucket that has been full for the Limiter's idle time
// (WithIdle), and returns how many it dropped. It never changes a decision
// (see the package documentation).
// Automatic sweeps call it; call it yourself to reclaim memory on your own
// schedule, with WithSweepEvery(0) or without.
func (l *Limiter[K]) Sweep() int {
	if l.m == nil {
		return 0
	}
	dropped := 0
	// Full since e - idle: full at that (earlier) reading, and nothing
	// granted since; an earlier reading is as safe as the current one.
	e := l.p.Elapsed()
	e -= min(e, l.idle)
	l.m.Range(func(key K, c *cell) bool {
		if !l.p.Retire(l.cell(c), e) {
			return true
		}
		dropped++
		l.m.Compute(key, func(old *cell, loaded bool) (*cell, bool) {
			return old, loaded && old == c // delete c, unless a request has replaced it
		})
		return true
	})
	return dropped
}

// cell returns c as a bucketcore.Cell of the Limiter's strategy.
func (l *Limiter[K]) cell(c *cell) bucketcore.Cell {
	if l.locked {
		return bucketcore.LockedWord(&c.mu, &c.w)
	}
	return bucketcore.Word(&c.w)
}

// get returns key's bucket, making it if the key has none or a retired one.
// The caller has checked that the Limiter is not the zero value (Possible).
func (l *Limiter[K]) get(key K) *cell {
	if c, ok := l.m.Load(key); ok && !retired(c) {
		return c // the common path: one lookup, no allocation
	}
	return l.make(key)
}

// make stores a new full bucket for key, unless another request has just
// stored a live one, and returns the bucket stored.
func (l *Limiter[K]) make(key K) *cell {
	made := false
	c, _ := l.m.Compute(cloneKey(key), func(old *cell, loaded bool) (*cell, bool) {
		if loaded && !retired(old) {
			return old, false
		}
		made = true
		return new(cell), false
	})
	if made {
		l.maybeSweep()
	}
	return c
}

// retired reports whether c was dropped by a sweep. For Strategy Mutex it
// reads the word without the lock: a stale answer only sends the caller
// round again, or to the lock, which decides.
func retired(c *cell) bool { return c.w.Load() == bucketcore.Retired }

// maybeSweep counts a new key and starts a sweep on its own goroutine when
// enough keys were made since the last (see the package documentation).
func (l *Limiter[K]) maybeSweep() {
	made := l.made.Add(1)
	if l.sweepEvery <= 0 || made < l.next.Load() || !l.sweeping.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer l.sweeping.Store(false)
		l.Sweep()
		l.next.Store(l.made.Load() + max(l.sweepEvery, int64(l.Len())))
	}()
}

// cloneKey returns key, with its bytes copied if it is a string, so that
// the map does not keep alive the buffer a key was sliced from.
func cloneKey[K comparable](key K) K {
	if s, ok := any(key).(string); ok {
		return any(strings.Clone(s)).(K)
	}
	return key
}

// Interface is what a Limiter offers per key, for code that accepts any
// keyed limiter (a test double, say).
type Interface[K comparable] interface {
	Allow(key K) bool
	TryTake(key K, n int64) bool
	Tokens(key K) int64
	Delay(key K, n int64) (time.Duration, error)
	Reserve(key K, n int64) (contend.Reservation, error)
	Wait(ctx context.Context, key K, n int64) error
	Capacity() int64
	Rate() float64
	Len() int
}

var _ Interface[string] = (*Limiter[string])(nil)

// Allower is the one call BenchmarkKeyed makes.
type Allower[K comparable] interface {
	Allow(key K) bool
}

// Impl is one keyed limiter for uint64 keys, by the name benchmarks give
// it.
type Impl struct {
	Name string // benchmark name: lower case, no trailing -digits
	New  func(contend.BucketConfig) (Allower[uint64], error)
}

// Impls returns the limiters BenchmarkKeyed compares with uint64 keys: the
// package's Limiter in each Strategy, sweeping by default (xsync-mapof and
// xsync-mapof-mutex), then two baselines that compare its map, kept only
// for that: one impls/cas bucket per key in a sync.Map (sync-map) or in a
// map behind one sync.Mutex (mutex-map), neither ever forgetting a key.
func Impls() []Impl {
	return []Impl{
		{"xsync-mapof", adapt()},
		{"xsync-mapof-mutex", adapt(WithStrategy(Mutex))},
		{"sync-map", baseline(func(cfg contend.BucketConfig) Allower[uint64] { return &syncMap{cfg: cfg} })},
		{"mutex-map", baseline(func(cfg contend.BucketConfig) Allower[uint64] {
			return &mutexMap{cfg: cfg, m: map[uint64]*cas.Bucket{}}
		})},
	}
}

// adapt returns New with opts, with Allower as its result type, never a
// non-nil interface holding a nil pointer.
func adapt(opts ...Option) func(contend.BucketConfig) (Allower[uint64], error) {
	return func(cfg contend.BucketConfig) (Allower[uint64], error) {
		l, err := New[uint64](cfg, opts...)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

// baseline validates cfg before making a baseline with it.
func baseline(make func(contend.BucketConfig) Allower[uint64]) func(contend.BucketConfig) (Allower[uint64], error) {
	return func(cfg contend.BucketConfig) (Allower[uint64], error) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return make(cfg), nil
	}
}
