package etcdlab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/contend-lab/contend"
)

// Lease is one holding of a Lock, or of n permits of a Semaphore: a key
// under the lock's prefix, attached to its client's etcd lease, and the
// key's create revision, which is the fencing token. Acquire and TryAcquire
// return a *Lease as a contend.Lease. Its methods are safe for concurrent
// use. The zero value refuses every operation with contend.ErrNotConstructed.
type Lease struct {
	c    *Client
	a    *attempt
	s    *session
	key  string
	rev  int64  // the key's create revision
	base string // the lock's or semaphore's prefix: its keys start with base+"/" or base+"!"
	what string // "Lock" or "Semaphore", for messages

	mu       sync.Mutex
	released bool
}

var _ contend.Lease = (*Lease)(nil)

func (h *Lease) check(op string) error {
	if h == nil || h.c == nil {
		return fmt.Errorf("etcdlab: Lease.%s: %w", op, contend.ErrNotConstructed)
	}
	return nil
}

// Token returns the key's create revision: the revision of the transaction
// that queued this acquisition. It is strictly greater than the token of
// every earlier holder of the same lock or semaphore. 0 for the zero value.
func (h *Lease) Token() uint64 {
	if h == nil {
		return 0
	}
	return uint64(h.rev)
}

// Key returns the lease's key in etcd.
func (h *Lease) Key() string {
	if h == nil {
		return ""
	}
	return h.key
}

// owner is the server-side test that this lease still holds: its key exists
// and is the one it created.
func (h *Lease) owner() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(h.key), "=", h.rev)
}

// Release deletes the lease's key if it is still the one it created. It
// returns ErrNotHeld (wrapped) if the key is gone (the client's lease
// expired or was revoked, or the lease was released already), and without
// a request if the client already knows its lease is gone. A request that
// fails is retried until ctx is done; then Release returns the error and
// the lease is as it was, so Release may be called again. If a retry finds
// the key gone, Release asks whether the client's etcd lease still lives:
// if so the key was deleted by the earlier attempt, and Release succeeds.
func (h *Lease) Release(ctx context.Context) error {
	if err := h.check("Release"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	op := h.what + " lease Release"
	if h.released {
		return fmt.Errorf("etcdlab: %s: %w", op, contend.ErrNotHeld)
	}
	b := backoff{d: 5 * time.Millisecond}
	var last error // the last failed attempt's error: it may have been applied
	for {
		if h.s.isLost() {
			h.released = true
			return fmt.Errorf("etcdlab: %s: %w (%w)", op, contend.ErrNotHeld, h.s.why)
		}
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := h.c.cli.Txn(cctx).If(h.owner()).Then(clientv3.OpDelete(h.key)).Commit()
		cancel()
		if err == nil {
			h.released = true
			h.a.free() // the key is gone, by this request or before it
			if !resp.Succeeded && !(last != nil && h.leaseAlive(ctx)) {
				return fmt.Errorf("etcdlab: %s: %w (its key is gone)", op, contend.ErrNotHeld)
			}
			return nil
		}
		last = err
		if h.c.sleep(ctx, &b) != nil {
			return failure(op, ctx, h.c, last)
		}
	}
}

// leaseAlive reports whether etcd still has the client's lease that h's
// key is on. A key gone while its lease lives was deleted, not expired: by
// an earlier attempt of Release whose reply was lost. An error counts as
// not alive, which makes Release report ErrNotHeld: the conservative
// answer.
func (h *Lease) leaseAlive(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := h.c.cli.TimeToLive(cctx, h.s.id)
	return err == nil && resp.TTL > 0
}

// Extend refreshes the client's etcd lease now, which moves its expiry, and
// that of every other hold on the same client, to the lease's TTL from now.
// etcd cannot change a lease's TTL after the grant: ttl must be positive
// and at most that TTL (Lease.TTL right after acquiring shows it), else
// Extend returns an error wrapping ErrBadTTL. It returns ErrNotHeld
// (wrapped) after Release, or if the lease is gone.
func (h *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := h.check("Extend"); err != nil {
		return err
	}
	op := h.what + " lease Extend"
	if ttl <= 0 || ttl > h.s.ttl {
		return fmt.Errorf("etcdlab: %s(%v): %w; this lease's TTL is %v", op, ttl, ErrBadTTL, h.s.ttl)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released || h.s.isLost() {
		return fmt.Errorf("etcdlab: %s: %w", op, contend.ErrNotHeld)
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := h.c.cli.KeepAliveOnce(cctx, h.s.id)
	cancel()
	switch {
	case leaseGone(err):
		h.s.markLost(errSessionLost)
		return fmt.Errorf("etcdlab: %s: %w (%w)", op, contend.ErrNotHeld, err)
	case err != nil:
		return fmt.Errorf("etcdlab: %s: %w", op, err)
	}
	h.s.refreshed(start, resp.TTL)
	return nil
}

// TTL returns how long the client's etcd lease has left, as this process's
// clock sees it: its TTL from the instant before the last refresh that
// succeeded was sent (the client refreshes it every third of its TTL), 0
// once the lease is known gone or released. Leases from etcd always expire:
// the second result is true.
func (h *Lease) TTL() (time.Duration, bool) {
	if h == nil || h.c == nil {
		return 0, true
	}
	h.mu.Lock()
	released := h.released
	h.mu.Unlock()
	if released {
		return 0, true
	}
	return h.s.remaining(), true
}

// ErrFenced is returned (wrapped, with contend.ErrNotHeld) by FencedPut when
// the server refused the write because the lease no longer holds.
var ErrFenced = errors.New("etcdlab: write refused by etcd: the lease no longer holds")

// FencedPut writes value to key in one transaction with the check that this
// lease still holds (its key exists, created at its token's revision), so
// that etcd itself refuses the write of a holder whose lease has expired
// and whose lock has passed to another: it returns an error wrapping
// ErrFenced and contend.ErrNotHeld then, and also, without a request, after
// Release. The check is the server's, so it does not depend on this
// process's clock or on whether it knows yet that its lease is gone. key must
// not be one of the lock's own keys. One request, not retried: on a network
// error the write may or may not have been applied.
func (h *Lease) FencedPut(ctx context.Context, key, value string) error {
	if err := h.check("FencedPut"); err != nil {
		return err
	}
	if key == "" || strings.HasPrefix(key, h.base+"/") || strings.HasPrefix(key, h.base+"!") {
		return fmt.Errorf("etcdlab: FencedPut(%q): the key is empty or one of the %s's own (%q/..., %q!...)", key, strings.ToLower(h.what), h.base, h.base)
	}
	h.mu.Lock()
	released := h.released
	h.mu.Unlock()
	if released {
		return fmt.Errorf("etcdlab: FencedPut: %w: %w (released)", ErrFenced, contend.ErrNotHeld)
	}
	resp, err := h.c.cli.Txn(ctx).If(h.owner()).Then(clientv3.OpPut(key, value)).Commit()
	if err != nil {
		return fmt.Errorf("etcdlab: FencedPut: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("etcdlab: FencedPut: %w: %w", ErrFenced, contend.ErrNotHeld)
	}
	return nil
}
