package redislab

import (
	"errors"
	"testing"
	"time"

	"github.com/contend-lab/contend/internal/redistest"
)

// A retried acquire (the same request id run again, as go-redis does after
// a timeout) returns the same grant and takes nothing more.
func TestLockAcquireReplayIsIdempotent(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 5*time.Second)
	l, err := NewLock(c, "replay", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tok1, _, err := l.node.acquire(ctx, "req-1", false, false)
	if err != nil || tok1 == 0 {
		t.Fatal(tok1, err)
	}
	fence1 := c.Get(ctx, "replay:fence").Val()
	tok2, _, err := l.node.acquire(ctx, "req-1", false, false)
	if err != nil || tok2 != tok1 {
		t.Fatalf("replay: token %d, %v; want %d again", tok2, err, tok1)
	}
	if f := c.Get(ctx, "replay:fence").Val(); f != fence1 {
		t.Fatalf("replay moved the fencing counter from %s to %s", fence1, f)
	}
	if tok, _, err := l.node.acquire(ctx, "req-2", false, false); err != nil || tok != 0 {
		t.Fatalf("another request: %d, %v; want 0 (held)", tok, err)
	}
}

// An abandoned request grants nothing, whichever of the request and its
// abandonment reaches the server first.
func TestLockAbandonEitherOrder(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 5*time.Second)
	l, err := NewLock(c, "tomb", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Abandon first, then the late request arrives: refused.
	if err := l.node.abandon(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.node.acquire(ctx, "late", false, false); !errors.Is(err, errAbandoned) {
		t.Fatalf("late request after its abandonment: %v", err)
	}
	if c.Exists(ctx, "tomb").Val() != 0 {
		t.Fatal("the late request took the lock")
	}
	// Request first, then its abandonment: undone.
	if tok, _, err := l.node.acquire(ctx, "early", false, false); err != nil || tok == 0 {
		t.Fatal(tok, err)
	}
	if err := l.node.abandon(ctx, "early"); err != nil {
		t.Fatal(err)
	}
	if c.Exists(ctx, "tomb").Val() != 0 {
		t.Fatal("abandonment left the lock held")
	}
	// Abandoning someone else's id leaves their lock alone.
	lease, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.node.abandon(ctx, "stranger"); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("the holder's lock did not survive a stranger's abandonment: %v", err)
	}
}

func TestSemaphoreReplayAndAbandon(t *testing.T) {
	_, c := redistest.Server(t)
	ctx := redistest.Ctx(t, 5*time.Second)
	s, err := NewSemaphore(c, "rsem", 3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held := func() int64 {
		t.Helper()
		h, err := s.Held(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	tok1, ok, err := s.acquireOnce(ctx, "req-1", 2, false)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	tok2, ok, err := s.acquireOnce(ctx, "req-1", 2, false)
	if !ok || err != nil || tok2 != tok1 {
		t.Fatalf("replay: %d, %v, %v; want the same grant %d", tok2, ok, err, tok1)
	}
	if h := held(); h != 2 {
		t.Fatalf("replayed acquire of 2 permits: %d held", h)
	}
	// A waiting request replayed keeps one place in the queue.
	if _, ok, _ := s.acquireOnce(ctx, "waiter", 2, true); ok {
		t.Fatal("2 more admitted with 1 free")
	}
	if _, ok, _ := s.acquireOnce(ctx, "waiter", 2, true); ok {
		t.Fatal("2 more admitted with 1 free")
	}
	if n := c.ZCard(ctx, "rsem:queue").Val(); n != 1 {
		t.Fatalf("queue holds %d entries for one waiter", n)
	}
	// Abandon the waiter: it leaves the queue, and its replay is refused.
	s.abandonID("waiter")
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.ZCard(ctx, "rsem:queue").Val(); n != 0 {
		t.Fatalf("abandoned waiter still queued")
	}
	if _, _, err := s.acquireOnce(ctx, "waiter", 1, true); !errors.Is(err, errAbandoned) {
		t.Fatalf("replay after abandonment: %v", err)
	}
	// Abandon a granted request: its permits come back.
	s.abandonID("req-1")
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if h := held(); h != 0 {
		t.Fatalf("abandoned grant still holds %d", h)
	}
	// Releasing an id that is gone frees nothing of anyone else's.
	a, err := s.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.TryAcquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := semReleaseScript.run(ctx, c, false, s.keys[:], a.(*semLease).id).Int64()
	if err != nil || v != 0 {
		t.Fatalf("replayed release: %d, %v; want 0 (not held)", v, err)
	}
	if h := held(); h != 2 {
		t.Fatalf("a replayed release freed someone else's permits: %d held, want 2", h)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryAcquire(ctx, 3); err != nil {
		t.Fatalf("all 3 permits should be free: %v", err)
	}
}
