package harness

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/keyed"
)

// BenchmarkKeyed workload=zipf parameters.
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

// BenchmarkKeyed measures keyed.Limiter.Allow, one bucket per key of 10,000,
// with Zipf-skewed keys (see keyedZipfS). Each goroutine draws its keys from
// its own source, pre-generated and cycled. Every key's bucket is created in
// setup, so the run measures the steady state: finding a known key's bucket
// and TryTake(1). Metrics: ops/s (requests per second, all goroutines),
// grants/s and grant-ratio (granted / requested).
func BenchmarkKeyed(b *testing.B) {
	for _, impl := range keyed.Impls() {
		b.Run("workload=zipf/impl="+impl.Name, func(b *testing.B) {
			for _, g := range benchGoroutines() {
				b.Run(goroutinesName(g), func(b *testing.B) {
					g := resolveGoroutines(g)
					b.ReportAllocs()
					l, err := impl.New(keyedConfig)
					if err != nil {
						b.Fatal(err)
					}
					for k := range uint64(keyedKeys) {
						l.Allow(k)
					}
					tables := make([][]uint64, g)
					for id := range tables {
						tables[id] = zipfKeys(id)
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

// zipfCache holds each goroutine's key sequence, generated once per process.
var zipfCache struct {
	sync.Mutex
	tables [][]uint64
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
