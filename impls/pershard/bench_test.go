package pershard

import (
	"testing"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
)

// These benchmarks compare this package with impls/cas, the one-word
// design it shards. Run: go test -run '^$' -bench . -benchmem -cpu 1,2 ./impls/pershard/
// The harness runs the cross-implementation benchmarks; these are for
// measuring this package alone.

func BenchmarkCounterAdd(b *testing.B) {
	impls := []struct {
		name string
		new  func() contend.Counter
	}{
		{"pershard", func() contend.Counter { return NewCounter() }},
		{"atomic", func() contend.Counter { return cas.NewCounter() }},
	}
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			c := impl.new()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Add(1)
				}
			})
			if c.Load() != int64(b.N) {
				b.Fatalf("lost updates: %d != %d", c.Load(), b.N)
			}
		})
	}
}

func BenchmarkCounterLoad(b *testing.B) {
	c := NewCounter()
	b.ReportAllocs()
	var sink int64
	for b.Loop() {
		sink += c.Load()
	}
	_ = sink
}

func BenchmarkBucketTryTake(b *testing.B) {
	impls := []struct {
		name string
		new  func(contend.BucketConfig) (contend.Bucket, error)
	}{
		{"pershard", func(cfg contend.BucketConfig) (contend.Bucket, error) { return NewBucket(cfg) }},
		{"atomic", func(cfg contend.BucketConfig) (contend.Bucket, error) { return cas.NewBucket(cfg) }},
	}
	cases := []struct {
		name string
		cfg  contend.BucketConfig
		pre  int64 // tokens to take before timing
	}{
		// Supply far above demand: every request is granted.
		{"granted", contend.BucketConfig{Capacity: 1 << 40, Rate: contend.MaxRate}, 0},
		// Empty and refilling once per 146 years: every request is denied.
		{"denied", contend.BucketConfig{Capacity: 1, Rate: contend.MinRate}, 1},
		// 10 million tokens/s: demand exceeds supply, a mix of both.
		{"saturated", contend.BucketConfig{Capacity: 1000, Rate: 1e7}, 0},
	}
	for _, tc := range cases {
		for _, impl := range impls {
			b.Run(tc.name+"/"+impl.name, func(b *testing.B) {
				bk, err := impl.new(tc.cfg)
				if err != nil {
					b.Fatal(err)
				}
				if tc.pre > 0 && !bk.TryTake(tc.pre) {
					b.Fatal("setup take denied")
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						bk.TryTake(1)
					}
				})
			})
		}
	}
}
