package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-limiter/memorystore"
	"golang.org/x/time/rate"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/keyed"
)

// BenchmarkKeyed workload parameters.
const (
	keyedKeys = 10_000 // distinct keys, 0 .. keyedKeys-1
	// keyedZipfS and keyedZipfV shape the skew: P(key k) ∝ (v + k)^-s. With
	// s = 1.1 and v = 1 over 10,000 keys, key 0 draws about 15% of the
	// requests, the 100 hottest keys 65% and the 1,000 hottest 84%.
	keyedZipfS = 1.1
	keyedZipfV = 1
	// keyedTable is the length of each goroutine's pre-generated key sequence,
	// cycled through, so that the generator is not measured.
	keyedTable = 1 << 13
)

// keyedConfig is every key's bucket: a burst of 1000 and 100,000 tokens/s on
// the real clock. Cold keys are always granted; the hottest keys, which draw
// millions of requests per second, run dry and are denied: the run mixes
// both paths, as a per-client limiter under skewed load does.
var keyedConfig = contend.BucketConfig{Capacity: 1000, Rate: 1e5}

// keyedImpl is one keyed limiter, by its benchmark name.
type keyedImpl[K comparable] struct {
	name string
	new  func(contend.BucketConfig) (keyed.Allower[K], func(), error) // the limiter and its Close
}

// keyedUint64 are the workload=zipf limiters: keyed.Impls.
func keyedUint64() []keyedImpl[uint64] {
	var out []keyedImpl[uint64]
	for _, impl := range keyed.Impls() {
		out = append(out, keyedImpl[uint64]{impl.Name, func(cfg contend.BucketConfig) (keyed.Allower[uint64], func(), error) {
			l, err := impl.New(cfg)
			return l, func() {}, err
		}})
	}
	return out
}

// keyedString are the workload=zipf-string limiters: the package's Limiter
// with string keys and its default sweeps (xsync-mapof, and
// xsync-mapof-mutex with the Mutex strategy), the same dropping buckets as
// soon as they are full (xsync-mapof-eager, WithIdle(0): cold keys, full
// again 10 ms after a request, are dropped and made again all run long),
// and the keyed limiters users already run: github.com/sethvargo/go-limiter's
// memorystore with its defaults (go-limiter; its sweep runs every 6 hours,
// so never during a run), and golang.org/x/time/rate Limiters in a
// sync.Map, created on first use and never forgotten (xrate-syncmap).
func keyedString() []keyedImpl[string] {
	return []keyedImpl[string]{
		{"xsync-mapof", func(cfg contend.BucketConfig) (keyed.Allower[string], func(), error) {
			l, err := keyed.New[string](cfg)
			return l, func() {}, err
		}},
		{"xsync-mapof-mutex", func(cfg contend.BucketConfig) (keyed.Allower[string], func(), error) {
			l, err := keyed.New[string](cfg, keyed.WithStrategy(keyed.Mutex))
			return l, func() {}, err
		}},
		{"xsync-mapof-eager", func(cfg contend.BucketConfig) (keyed.Allower[string], func(), error) {
			l, err := keyed.New[string](cfg, keyed.WithIdle(0))
			return l, func() {}, err
		}},
		{"go-limiter", func(cfg contend.BucketConfig) (keyed.Allower[string], func(), error) {
			// Capacity tokens per Capacity/Rate: the same long-run rate. Its
			// buckets refill whole intervals at a time, on the wall clock.
			s, err := memorystore.New(&memorystore.Config{
				Tokens:   uint64(cfg.Capacity),
				Interval: time.Duration(float64(cfg.Capacity) / cfg.Rate * 1e9),
			})
			if err != nil {
				return nil, nil, err
			}
			return goLimiter{s}, func() { _ = s.Close(context.Background()) }, nil
		}},
		{"xrate-syncmap", func(cfg contend.BucketConfig) (keyed.Allower[string], func(), error) {
			return &xrateSyncMap{cfg: cfg}, func() {}, cfg.Validate()
		}},
	}
}

// BenchmarkKeyed measures one request (Allow, TryTake(1) or Take) to a keyed
// limiter, one bucket per key of 10,000, with Zipf-skewed keys (see
// keyedZipfS). Each goroutine draws its keys from its own source,
// pre-generated and cycled.
//
//	BenchmarkKeyed/workload=zipf/impl=<xsync-mapof|xsync-mapof-mutex|sync-map|mutex-map>/goroutines=<g>
//	BenchmarkKeyed/workload=zipf-string/impl=<xsync-mapof|xsync-mapof-mutex|xsync-mapof-eager|go-limiter|xrate-syncmap>/goroutines=<g>
//
// workload=zipf keys are uint64; zipf-string keys are the same draws as
// IPv4-like strings ("10.1.2.3"), made in setup. Every key is requested
// once in setup, so the run starts in the steady state; the package's
// Limiter sweeps during the run as it would in a server, and its
// allocs/op counts the keys it makes again. Metrics: ops/s (requests per
// second, all goroutines), grants/s and grant-ratio (granted / requested).
func BenchmarkKeyed(b *testing.B) {
	b.Run("workload=zipf", func(b *testing.B) { benchKeyed(b, keyedUint64(), zipfKeys) })
	b.Run("workload=zipf-string", func(b *testing.B) { benchKeyed(b, keyedString(), zipfStrings) })
}

func benchKeyed[K comparable](b *testing.B, impls []keyedImpl[K], keys func(id int) []K) {
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			for _, g := range benchGoroutines() {
				b.Run(goroutinesName(g), func(b *testing.B) {
					g := resolveGoroutines(g)
					b.ReportAllocs()
					l, closeFn, err := impl.new(keyedConfig)
					if err != nil {
						b.Fatal(err)
					}
					defer closeFn()
					tables := make([][]K, g)
					for id := range tables {
						tables[id] = keys(id)
					}
					for _, k := range keys(keyedKeys) { // a table of its own, covering most keys
						l.Allow(k)
					}
					granted := runParallel(b, g, func(id, n int) int64 {
						keys := tables[id]
						var granted int64
						for i := range n {
							if l.Allow(keys[i%keyedTable]) {
								granted++
							}
						}
						return granted
					})
					reportPerSecond(b, float64(b.N), "ops/s")
					reportPerSecond(b, float64(granted), "grants/s")
					b.ReportMetric(float64(granted)/float64(b.N), "grant-ratio")
				})
			}
		})
	}
}

// BenchmarkKeyedMemory is BenchmarkMemory's workload=keyed (see
// bench_memory_test.go for how heap is measured) with string keys, for
// the string-keyed limiters BenchmarkKeyed compares: the heap held per key
// after Allow on keyedKeys new keys ("10.1.2.3"), made before the first
// reading. B/key includes the limiter's own copy of a key where it makes
// one (the package's Limiter does; go-limiter and xrate-syncmap keep the
// caller's string, held here anyway, so it is not counted). The package's
// Limiter runs on a clock that does not move, so that no bucket is full
// again and a sweep drops none.
//
//	BenchmarkKeyedMemory/workload=keyed-string/impl=<name>/goroutines=1   B/key

func BenchmarkKeyedMemory(b *testing.B) {
	keys := make([]string, keyedKeys)
	for k := range keys {
		keys[k] = keyString(uint64(k))
	}
	for _, impl := range keyedString() {
		runFirstCPU(b, "workload=keyed-string/impl="+impl.name+"/goroutines=1", func(b *testing.B) {
			memoryMeasure(b, keyedKeys, "B/key", func() heapUse {
				cfg := keyedConfig
				cfg.Clock = contend.NewManualClock(0)
				l, closeFn, err := impl.new(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer closeFn()
				u := measureHeap(b, func() {
					for _, k := range keys {
						l.Allow(k)
					}
				})
				runtime.KeepAlive(l)
				return u
			})
		})
	}
}

// zipfCache holds each goroutine's key sequence, generated once per process.
var zipfCache struct {
	sync.Mutex
	tables  [][]uint64
	strings [][]string
}

// zipfKeys returns goroutine id's key sequence: keyedTable Zipf-distributed
// keys from a PCG source seeded by id, the same in every run.
func zipfKeys(id int) []uint64 {
	zipfCache.Lock()
	defer zipfCache.Unlock()
	for len(zipfCache.tables) <= id {
		zipfCache.tables = append(zipfCache.tables, nil)
	}
	if zipfCache.tables[id] == nil {
		z := rand.NewZipf(rand.New(rand.NewPCG(0x5eed, uint64(id))), keyedZipfS, keyedZipfV, keyedKeys-1)
		t := make([]uint64, keyedTable)
		for i := range t {
			t[i] = z.Uint64()
		}
		zipfCache.tables[id] = t
	}
	return zipfCache.tables[id]
}

// zipfStrings returns zipfKeys(id) as strings (keyString), made once.
func zipfStrings(id int) []string {
	nums := zipfKeys(id)
	zipfCache.Lock()
	defer zipfCache.Unlock()
	for len(zipfCache.strings) <= id {
		zipfCache.strings = append(zipfCache.strings, nil)
	}
	if zipfCache.strings[id] == nil {
		t := make([]string, len(nums))
		for i, k := range nums {
			t[i] = keyString(k)
		}
		zipfCache.strings[id] = t
	}
	return zipfCache.strings[id]
}

// keyString is key k as a client address would be: "10.a.b.c".
func keyString(k uint64) string {
	return fmt.Sprintf("10.%d.%d.%d", k>>16&0xff, k>>8&0xff, k&0xff)
}

// goLimiter adapts a go-limiter Store.
type goLimiter struct {
	s interface {
		Take(ctx context.Context, key string) (tokens, remaining, reset uint64, ok bool, err error)
	}
}

func (g goLimiter) Allow(key string) bool {
	_, _, _, ok, _ := g.s.Take(context.Background(), key)
	return ok
}

// xrateSyncMap is x/time/rate Limiters in a sync.Map, the way many servers
// write a per-client limiter.
type xrateSyncMap struct {
	cfg contend.BucketConfig
	m   sync.Map // string -> *rate.Limiter
}

func (x *xrateSyncMap) Allow(key string) bool {
	v, ok := x.m.Load(key)
	if !ok {
		v, _ = x.m.LoadOrStore(key, rate.NewLimiter(rate.Limit(x.cfg.Rate), int(x.cfg.Capacity)))
	}
	return v.(*rate.Limiter).Allow()
}
