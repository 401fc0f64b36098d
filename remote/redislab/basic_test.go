package redislab

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/contend-lab/contend/internal/redistest"

	"github.com/contend-lab/contend"
	"github.com/redis/go-redis/v9"
)

// Compile-time checks: the implementations meet the contracts.
var (
	_ contend.Lock      = (*Lock)(nil)
	_ contend.Lock      = (*Redlock)(nil)
	_ contend.Semaphore = (*Semaphore)(nil)
	_ contend.Bucket    = (*Bucket)(nil)
)

func TestLockBasics(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 10*time.Second)
	l, err := NewLock(c, "lk", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, ok := a.TTL(); !ok || ttl <= 900*time.Millisecond || ttl > time.Second {
		t.Fatalf("TTL = %v, %v; want just under 1s less drift", ttl, ok)
	}
	// The token is floored at the server's clock in µs.
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if tok := a.Token(); tok > uint64(now.UnixMicro()) || tok < uint64(now.Add(-time.Minute).UnixMicro()) {
		t.Fatalf("token %d, server time %d µs", tok, now.UnixMicro())
	}
	if got, err := c.Get(ctx, "lk:fence").Result(); err != nil || got != strconv.FormatUint(a.Token(), 10) {
		t.Fatalf("fence key = %q, %v; want %d exactly (no float formatting)", got, err, a.Token())
	}
	if _, err := l.TryAcquire(ctx); !errors.Is(err, contend.ErrHeld) {
		t.Fatalf("second TryAcquire: %v, want ErrHeld", err)
	}
	if err := a.Extend(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if pttl := c.PTTL(ctx, "lk").Val(); pttl <= time.Second {
		t.Fatalf("PTTL after Extend(2s) = %v", pttl)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); !errors.Is(err, contend.ErrNotHeld) {
		t.Fatalf("second Release: %v, want ErrNotHeld", err)
	}
	if err := a.Extend(ctx, time.Second); !errors.Is(err, contend.ErrNotHeld) {
		t.Fatalf("Extend after Release: %v, want ErrNotHeld", err)
	}
	b, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Token() <= a.Token() {
		t.Fatalf("tokens %d then %d", a.Token(), b.Token())
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if l.RoundTrips() < 6 {
		t.Fatalf("RoundTrips = %d", l.RoundTrips())
	}
}

func TestConstructorsRejectBadInput(t *testing.T) {
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // no ContextTimeoutEnabled
	defer plain.Close()
	good := NewClient("127.0.0.1:1")
	defer good.Close()
	if _, err := NewLock(plain, "k", time.Second); !errors.Is(err, ErrClientConfig) {
		t.Errorf("NewLock with a client ignoring deadlines: %v", err)
	}
	if _, err := NewLock(good, "k", 0); !errors.Is(err, ErrBadTTL) {
		t.Errorf("NewLock ttl 0: %v", err)
	}
	if _, err := NewSemaphore(good, "k", 0, time.Second); err == nil {
		t.Errorf("NewSemaphore of 0 permits succeeded")
	}
	if _, err := NewRedlock(nil, "k", time.Second); err == nil {
		t.Errorf("NewRedlock without servers succeeded")
	}
	s, err := NewSemaphore(good, "k", 3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{0, -1, 4} {
		var pe *contend.PermitError
		if _, err := s.TryAcquire(context.Background(), n); !errors.As(err, &pe) {
			t.Errorf("TryAcquire(%d): %v, want *PermitError", n, err)
		}
		if _, err := s.Acquire(context.Background(), n); !errors.As(err, &pe) {
			t.Errorf("Acquire(%d): %v, want *PermitError", n, err)
		}
	}
	if s.RoundTrips() != 0 {
		t.Errorf("permit errors cost %d round trips", s.RoundTrips())
	}
}

func TestSemaphoreBasics(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 10*time.Second)
	s, err := NewSemaphore(c, "sem", 3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.TryAcquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryAcquire(ctx, 2); !errors.Is(err, contend.ErrHeld) {
		t.Fatalf("TryAcquire(2) with 1 free: %v", err)
	}
	b, err := s.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Token() <= a.Token() {
		t.Fatalf("tokens %d then %d", a.Token(), b.Token())
	}
	if h, err := s.Held(ctx); err != nil || h != 3 {
		t.Fatalf("Held = %d, %v; want 3", h, err)
	}
	if err := a.Extend(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); !errors.Is(err, contend.ErrNotHeld) {
		t.Fatalf("second Release: %v", err)
	}
	if h, _ := s.Held(ctx); h != 1 {
		t.Fatalf("Held after release = %d; want 1", h)
	}
	// b expires after 1s; its permit comes back, and its Release frees nothing.
	time.Sleep(1100 * time.Millisecond)
	if ttl, _ := b.TTL(); ttl != 0 {
		t.Fatalf("expired lease TTL = %v", ttl)
	}
	if h, _ := s.Held(ctx); h != 0 {
		t.Fatalf("Held after expiry = %d; want 0", h)
	}
	if err := b.Release(ctx); !errors.Is(err, contend.ErrNotHeld) {
		t.Fatalf("Release of expired lease: %v", err)
	}
}
