package redisnaive

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
	"github.com/contend-lab/contend/internal/redisx"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
)

var (
	_ contend.Lock      = (*NaiveLock)(nil)
	_ contend.Semaphore = (*NaiveSemaphore)(nil)
)

func TestMain(m *testing.M) { redistest.Main(m) }

var errCrash = errors.New("simulated crash")

// The naive lock, crashed between SETNX and EXPIRE, is held forever; its
// release deletes whoever's lock is there.
func TestNaiveLockFlaws(t *testing.T) {
	_, c := redistest.Server(t)
	const ttl = 300 * time.Millisecond
	t.Run("naive", func(t *testing.T) {
		ctx := redistest.Ctx(t, 5*time.Second)
		crashing, err := NewNaiveLock(c, "naive-crash", ttl, WithAfterSetNX(func() error { return errCrash }))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := crashing.Acquire(ctx); !errors.Is(err, errCrash) {
			t.Fatalf("Acquire with the crash hook: %v", err)
		}
		if pttl := c.PTTL(ctx, "naive-crash").Val(); pttl != -1 {
			t.Fatalf("PTTL = %v, want -1 (no expiry)", pttl)
		}
		other, err := NewNaiveLock(c, "naive-crash", ttl)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * ttl)
		if _, err := other.TryAcquire(ctx); !errors.Is(err, contend.ErrHeld) {
			t.Fatalf("after 3×TTL: %v, want ErrHeld: the crashed lock never expires", err)
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := other.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire on the orphaned lock: %v", err)
		}
	})
	t.Run("naive-release-deletes-anyones-lock", func(t *testing.T) {
		ctx := redistest.Ctx(t, 5*time.Second)
		n, err := NewNaiveLock(c, "naive-del", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		a, err := n.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // a expires
		b, err := n.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx); err != nil { // deletes b's lock: the flaw
			t.Fatalf("stale naive Release: %v (it should succeed, wrongly)", err)
		}
		if _, err := n.TryAcquire(ctx); err != nil {
			t.Fatalf("a third holder could not walk in: %v", err)
		}
		_ = b
	})
}

// The naive semaphore over-admits under 50 goroutines.
func TestNaiveSemaphoreOverAdmits(t *testing.T) {
	_, c := redistest.Server(t)
	const capacity, goroutines = 2, 50
	run := func(sem contend.Semaphore, d time.Duration) (maxHolders, grants int64) {
		var holders, peak, n atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for ctx.Err() == nil {
					l, err := sem.Acquire(ctx, 1)
					if err != nil {
						continue
					}
					h := holders.Add(1)
					for {
						p := peak.Load()
						if h <= p || peak.CompareAndSwap(p, h) {
							break
						}
					}
					n.Add(1)
					time.Sleep(200 * time.Microsecond)
					holders.Add(-1)
					rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
					_ = l.Release(rctx)
					rcancel()
				}
			})
		}
		wg.Wait()
		return peak.Load(), n.Load()
	}
	t.Run("naive", func(t *testing.T) {
		naive, err := NewNaiveSemaphore(c, "nsem", capacity)
		if err != nil {
			t.Fatal(err)
		}
		for attempt := 1; ; attempt++ {
			var peak, grants int64
			redistest.Within(t, 2*time.Second, "naive run", func() { peak, grants = run(naive, 300*time.Millisecond) })
			t.Logf("attempt %d: %d grants, at most %d holders of %d permits", attempt, grants, peak, capacity)
			if peak > capacity {
				return
			}
			if attempt == 5 {
				t.Fatalf("the naive semaphore never over-admitted in %d runs", attempt)
			}
		}
	})
}

func TestConstructorsRejectBadInput(t *testing.T) {
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // no ContextTimeoutEnabled
	defer plain.Close()
	_, err := NewNaiveLock(plain, "k", time.Second)
	assert.ErrorIs(t, err, redisx.ErrClientConfig)
	assert.NotContains(t, err.Error(), "redisnaive: NewNaiveLock: redisnaive:", "the prefix is said once")
	_, err = NewNaiveLock(nil, "k", time.Second)
	assert.Error(t, err)
	_, err = NewNaiveSemaphore(nil, "k", 2)
	assert.Error(t, err)
}
