package pershard

import (
	"sync/atomic"
	"unsafe"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/bucketcore"
	"github.com/contend-lab/contend/refill"
)

// The deny path calls refill.Limit.Denies as a method expression on
// purpose. Go 1.26 inlines a method only from a package its caller imports
// itself: written b.p.Limit.Denies, with refill reached through bucketcore
// alone, it stayed a call on every denial (checked with -gcflags=-m).

// maxBatch caps the batch size. At 64 tokens per batch a request of one
// token touches the shared word at most once in 64 times, which
// already takes it off the contended path; larger batches would only
// strand more tokens in caches (the under-grant bound) and lengthen the
// burst after idle.
const maxBatch = 64

// refilling is the flag bit of a cache word: set while one goroutine moves a
// batch from the global word into the cache. The other 63 bits count the
// cached tokens, at most maxBatch.
const refilling = uint64(1) << 63

// cache is one per-P slot: tokens already counted as consumed by the global
// word and not yet granted, plus the refilling flag; padded to padSize.
type cache struct {
	w atomic.Uint64
	_ [padSize - 8]byte
}

// Bucket is a [contend.Bucket] with a global limit and per-P token caches:
// the common TryTake takes from the calling P's cache with one
// compare-and-swap on a line no other P normally writes, with no clock
// read. It is approximate, within stated bounds (S caches of at most B
// tokens each; see the package documentation for the design and proofs):
//
//   - It never over-grants: since construction it grants at most
//     Capacity + Rate × elapsed tokens, with any number of goroutines.
//   - It may under-grant, by at most [Bucket.UnderGrantBound] (S × B)
//     tokens, and over a window W it may grant up to [BurstBound] more than
//     Capacity + Rate × W, from caches filled before the window opened.
//   - It is lock-free and not linearizable. A request with n <= 0 or
//     n > Capacity returns false and changes nothing.
//
// Cost: the CPU hint, one load and one CAS on the local cache, and no
// allocation; about one request in B/n refills the cache, paying what
// impls/cas pays on every request. A denial reads every cache once and
// writes nothing. Memory: 256 bytes plus 128 per cache. Bucket has no
// Delay, Reserve or Wait (its caches grant without the global word, so a
// due time could only be a bound): to wait for tokens, use impls/cas.
// The zero Bucket denies every request: use NewBucket.
type Bucket struct {
	bucketConf
	_   [padSize - unsafe.Sizeof(bucketConf{})%padSize]byte
	tat atomic.Uint64 // the global word: refill's state, as in impls/cas
	_   [padSize - 8]byte
}

// bucketConf is the read-only part of a Bucket.
type bucketConf struct {
	p      bucketcore.Params
	caches []cache // len S, a power of two
	mask   uint64  // S - 1
	batch  uint64  // B
}

// NewBucket returns a full Bucket, or a *contend.ConfigError. It sizes its
// caches for GOMAXPROCS as it is now.
func NewBucket(cfg contend.BucketConfig) (*Bucket, error) {
	p, err := bucketcore.New(cfg)
	if err != nil {
		return nil, err
	}
	s := currentSlots()
	return &Bucket{bucketConf: bucketConf{
		p:      p,
		caches: make([]cache, s),
		mask:   uint64(s - 1),
		batch:  batchSize(p.Limit.Capacity(), s),
	}}, nil
}

// batchSize returns B = clamp(capacity/(4×slots), 1, maxBatch).
func batchSize(capacity uint64, slots int) uint64 {
	b := capacity / (4 * uint64(slots))
	if b < 1 {
		return 1
	}
	if b > maxBatch {
		return maxBatch
	}
	return b
}

// UnderGrantBound returns the most tokens a Bucket built now from cfg may
// grant fewer than an exact bucket when demand exceeds supply: S × B, the
// most its caches can hold (see Bucket), for the current GOMAXPROCS. It
// returns 0 for an invalid cfg. A Bucket's own bound, fixed at its
// construction, is its UnderGrantBound method.
func UnderGrantBound(cfg contend.BucketConfig) int64 {
	if cfg.Validate() != nil {
		return 0
	}
	s := currentSlots()
	return int64(s) * int64(batchSize(uint64(cfg.Capacity), s))
}

// BurstBound returns the most tokens a Bucket built now from cfg may grant
// over a window W beyond the textbook bound Capacity + Rate × W: S × B, what
// its caches can hold when the window opens (see Bucket). It is the same
// number as UnderGrantBound, for the other direction. It returns 0 for an
// invalid cfg.
func BurstBound(cfg contend.BucketConfig) int64 { return UnderGrantBound(cfg) }

// UnderGrantBound returns S × B for this bucket: the most tokens its caches
// can hold together, and so the most it may grant fewer than an exact
// bucket when demand exceeds supply. It does not change with GOMAXPROCS.
func (b *Bucket) UnderGrantBound() int64 {
	return int64(len(b.caches)) * int64(b.batch)
}

// TryTake takes n tokens at once, or none. It returns false, changing
// nothing, when n <= 0 or n > Capacity.
func (b *Bucket) TryTake(n int64) bool {
	if !b.p.Possible(n) {
		return false
	}
	u := uint64(n)
	if u > b.batch {
		// No cache ever holds more than B tokens: go straight to the
		// global word, and do not look for a cache to steal from.
		return b.takeGlobal(u)
	}
	// shardHint, inlined by hand: as a function it exceeds the inliner's
	// budget and costs a second call on every request.
	var hint uint64
	if useRDPID {
		hint = rdpid()
	} else {
		hint = pid()
	}
	home := hint & b.mask
	c := &b.caches[home].w
	for {
		v := c.Load()
		if v&^refilling >= u {
			// Common path: the tokens are in this P's cache.
			if c.CompareAndSwap(v, v-u) {
				return true
			}
			continue
		}
		if v&refilling != 0 {
			// Another goroutine is refilling this cache: do not wait.
			break
		}
		// The cache is short: load the global word, then read the clock
		// (in that order, as impls/cas does). A denial is decided here,
		// inline, with no call but the clock's: one multiplication.
		g := b.tat.Load()
		elapsed := b.p.Elapsed()
		if (*refill.Limit).Denies(&b.p.Limit, g, elapsed, u) {
			return b.steal(home, u)
		}
		granted, retry := b.refill(c, v, u, g, elapsed)
		if !retry {
			return granted || b.steal(home, u)
		}
	}
	return b.takeGlobal(u) || b.steal(home, u)
}

// refill is TryTake's slow path for n <= B when the cache c was seen
// holding v < n tokens, flag clear, and the global word, read as g at
// elapsed, was seen holding at least n. It takes n + B - v tokens from the
// global word if it holds that many, or else exactly n, grants n and
// deposits the rest in c, so that c never holds more than B. It reports
// whether n was granted, or retry when c changed before it could be claimed
// (nothing was written then).
//
// All-or-nothing batches keep the path free of divisions and, when supply
// is short, leave the scarce tokens in the global word where every P can
// reach them instead of stranding them in one cache.
func (b *Bucket) refill(c *atomic.Uint64, v, n, g, elapsed uint64) (granted, retry bool) {
	batch := min(n+b.batch-v, b.p.Limit.Capacity()) // v < n <= B, so n < n+B-v
	next, got := b.decide(g, elapsed, n, batch)
	if got == 0 {
		return false, false // denied: nothing written
	}
	if got > n {
		// Claim the cache, so that no other goroutine deposits into it until
		// we have: with the flag set it can only shrink below v, so after our
		// deposit of at most B - v it holds at most B.
		if !c.CompareAndSwap(v, v|refilling) {
			return false, true
		}
	} else if b.tat.CompareAndSwap(g, next) {
		return true, false // exactly n, nothing to deposit: no claim needed
	} else {
		return false, true // lost the global word: look at the cache again
	}
	for !b.tat.CompareAndSwap(g, next) {
		// A grant may reuse the reading; a denial needs one taken after
		// this load (see bucketcore.Params.TakeWord).
		g = b.tat.Load()
		if next, got = b.decide(g, elapsed, n, batch); got == 0 {
			elapsed = b.p.Elapsed()
			next, got = b.decide(g, elapsed, n, batch)
		}
		if got == 0 {
			c.Add(refilling) // clears the flag (wraps mod 2^64); tokens unchanged
			return false, false
		}
	}
	// Deposit got - n tokens (possibly none) and clear the flag in one add:
	// the flag bit plus refilling wraps to zero, and the count stays below
	// 2^63.
	c.Add(got - n + refilling)
	return true, false
}

// decide returns the consumed count to store and the tokens granted for a
// refill at consumed count g: batch tokens if the global word holds them,
// else n, else none (0).
//
// It asks for n first, so that a denial costs what impls/cas's does.
func (b *Bucket) decide(g, elapsed, n, batch uint64) (next, got uint64) {
	next, ok := b.p.Limit.Take(g, elapsed, n)
	if !ok {
		return g, 0
	}
	if more, ok := b.p.Limit.Take(g, elapsed, batch); ok {
		return more, batch
	}
	return next, n
}

// takeGlobal decides n tokens against the global word alone, exactly as
// impls/cas.Bucket does. A denial writes nothing.
func (b *Bucket) takeGlobal(n uint64) bool {
	return b.p.TakeWord(&b.tat, n)
}

// steal takes n tokens from the first cache, starting after home and ending
// with it, that holds at least n. It writes only when it grants.
//
// It ends with home although its caller has just seen home short: between
// that look and the steal the caller read the clock (and may have been
// preempted), and a refill may have filled home meanwhile. Skipping it
// would save one load per denial and could deny a request while its own
// cache holds the tokens (TestDenialLooksHomeAgain).
func (b *Bucket) steal(home, n uint64) bool {
	for i := uint64(1); i <= b.mask+1; i++ {
		c := &b.caches[(home+i)&b.mask].w
		for {
			v := c.Load()
			if v&^refilling < n {
				break
			}
			if c.CompareAndSwap(v, v-n) {
				return true
			}
		}
	}
	return false
}
