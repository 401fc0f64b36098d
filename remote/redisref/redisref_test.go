package redisref

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contend-lab/contend/internal/redistest"
	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
)

var (
	_ contend.Lock   = (*RedsyncLock)(nil)
	_ contend.Lock   = (*RedisLockRef)(nil)
	_ contend.Bucket = (*RedisRateBucket)(nil)
)

// The reference locks exclude under contention and honour the lease
// contract, apart from their pinned deviations.
func TestReferenceLocks(t *testing.T) {
	_, clients := redistest.Servers(t, 3)
	const ttl = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		make func(key string) (contend.Lock, error)
	}{
		{"redsync", func(key string) (contend.Lock, error) { return NewRedsyncLock(clients, key, ttl) }},
		{"redislock", func(key string) (contend.Lock, error) { return NewRedisLockRef(clients[0], key, ttl) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := redistest.Ctx(t, 10*time.Second)
			l, err := tc.make("ref:" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			var holders, overlaps, grants atomic.Int64
			redistest.Within(t, 5*time.Second, "20 goroutines × 3", func() {
				var wg sync.WaitGroup
				for range 20 {
					wg.Go(func() {
						for range 3 {
							lease, err := l.Acquire(ctx)
							if err != nil {
								t.Error(err)
								return
							}
							if holders.Add(1) != 1 {
								overlaps.Add(1)
							}
							grants.Add(1)
							holders.Add(-1)
							if err := lease.Release(ctx); err != nil {
								t.Error(err)
							}
						}
					})
				}
				wg.Wait()
			})
			if overlaps.Load() != 0 || grants.Load() != 60 {
				t.Fatalf("%d grants, %d overlaps", grants.Load(), overlaps.Load())
			}
			a, err := l.TryAcquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Deviation: no fencing token.
			if a.Token() != 0 {
				t.Fatalf("Token = %d: the reference now has a fencing token; update its doc", a.Token())
			}
			if _, err := l.TryAcquire(ctx); !errors.Is(err, contend.ErrHeld) {
				t.Fatalf("TryAcquire while held: %v", err)
			}
			if ttlLeft, ok := a.TTL(); !ok || ttlLeft <= 0 || ttlLeft > ttl {
				t.Fatalf("TTL = %v, %v", ttlLeft, ok)
			}
			if err := a.Extend(ctx, ttl); err != nil {
				t.Fatal(err)
			}
			time.Sleep(ttl + 50*time.Millisecond)
			if ttlLeft, _ := a.TTL(); ttlLeft != 0 {
				t.Fatalf("expired lease reports TTL %v", ttlLeft)
			}
			if err := a.Release(ctx); !errors.Is(err, contend.ErrNotHeld) {
				t.Fatalf("Release of an expired lease: %v", err)
			}
			b, err := l.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("lock not free after expiry: %v", err)
			}
			if err := b.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.Release(ctx); !errors.Is(err, contend.ErrNotHeld) {
				t.Fatalf("second Release: %v", err)
			}
		})
	}
}

// Pinned: redsync extends by the lock's own ttl only.
func TestRedsyncExtendFixedTTL(t *testing.T) {
	_, clients := redistest.Servers(t, 3)
	ctx := redistest.Ctx(t, 5*time.Second)
	l, err := NewRedsyncLock(clients, "ref:fixed", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Extend(ctx, 2*time.Second); !errors.Is(err, ErrFixedTTL) {
		t.Fatalf("Extend(2s) on a 1s redsync lock: %v, want ErrFixedTTL", err)
	}
	_ = a.Release(ctx)
}

// Pinned: redislock's Acquire with a context without deadline gives up
// after one ttl instead of waiting until ctx is done.
func TestRedisLockRefGivesUpAfterTTL(t *testing.T) {
	_, c := redistest.Server(t)
	l, err := NewRedisLockRef(c, "ref:giveup", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Extend(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	redistest.Within(t, time.Second, "Acquire without deadline on a held redislock", func() {
		if _, err := l.Acquire(ctx); err == nil {
			t.Error("acquired a held lock")
		}
	})
	_ = a.Release(ctx)
}

// redis_rate over 300 ms from 20 goroutines: what it grants against
// capacity + rate × elapsed. It must grant at least 90% of it; whether it
// ever exceeds it is logged (float64 seconds in Lua).
func TestReferenceBucketBound(t *testing.T) {
	_, c := redistest.Server(t)
	// Capacity 100 at 1000/s: a bucket left alone fills in 100 ms, so a
	// stall of the client or the server shorter than that forfeits no
	// token, and the lower bound tests the bucket, not the machine's load
	// (at capacity 10, a 10 ms stall under -race already forfeited tokens
	// no bucket could have granted).
	cfg := contend.BucketConfig{Capacity: 100, Rate: 1000}
	warm, err := NewRedisRateBucket(c, "gcra-warm", cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedisRateBucket(c, "gcra", cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := redistest.WarmLoadBucket(t, warm, b, cfg)
	if l.Errs != 0 || l.Denied == 0 {
		t.Fatalf("errors %d, denials %d", l.Errs, l.Denied)
	}
	if g := float64(l.Granted); g < 0.9*l.Supply {
		t.Fatalf("granted %v < 90%% of %.1f", g, l.Supply)
	}
	if g := float64(l.Granted); g > math.Floor(l.Supply) {
		t.Logf("redis_rate granted %v > capacity + rate × elapsed = %.2f", g, l.Supply)
	}
}

func TestRedisRateBucketConfig(t *testing.T) {
	c := redisx.NewClient("127.0.0.1:1")
	defer c.Close()
	for _, cfg := range []contend.BucketConfig{
		{Capacity: 10, Rate: 1.5},
		{Capacity: 0, Rate: 1},
		{Capacity: 10, Rate: 1e10},
	} {
		var ce *contend.ConfigError
		if _, err := NewRedisRateBucket(c, "k", cfg); !errors.As(err, &ce) {
			t.Errorf("NewRedisRateBucket(%+v): %v, want *ConfigError", cfg, err)
		}
	}
}

func TestMain(m *testing.M) { redistest.Main(m) }
