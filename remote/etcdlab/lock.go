package etcdlab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/contend-lab/contend"
)

// absent is true if key does not exist.
func absent(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

// empty is true if no key starts with prefix (etcd compares every key in
// the range, and an empty range compares as one absent key).
func empty(prefix string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix()
}

// Lock is a [contend.Lock] on etcd: the lab's queue recipe (see the package
// doc). Acquire creates a key under the prefix on the client's lease and
// waits, for the deletion of the key ahead only, until it is the oldest;
// TryAcquire creates its key only if no other key is there. Release
// deletes the key. While a quorum of the cluster serves:
//
//   - One holder at a time as etcd sees it; fencing tokens (the keys'
//     create revisions) strictly increase from one holder to the next.
//   - FIFO: holders follow the order in which Acquires queued.
//   - A crashed or stalled holder's lock comes back a lease TTL after its
//     client's last refresh; FencedPut lets etcd refuse its writes after.
//     Without fencing (FencedPut, or the token checked at the resource), a
//     holder that outlives its lease without knowing it is not excluded.
//   - Contexts as contend.Lock says, with the hand-off deviation: a waiter
//     whose ctx ends just as its turn comes holds the lock (TryAcquire sees
//     ErrHeld) until it notices and deletes its key.
//
// Cost: an uncontended Acquire is one transaction (create the key, read the
// key ahead), Release one; a waiter adds one read per key ahead of it that
// leaves (the watch it waits on is shared; see the package doc). See
// BenchmarkLock.
type Lock struct{ q queue }

var _ contend.Lock = (*Lock)(nil)

// NewLock returns a Lock whose keys are prefix+"/<lease>-<slot>" (and
// prefix+"!..." for tombstones), on c's lease. Every Lock on the same
// prefix, on any client, is the same lock; a prefix must not be another's
// prefix followed by "/".
func NewLock(c *Client, prefix string) (*Lock, error) {
	q, err := newQueue("NewLock", c, prefix)
	if err != nil {
		return nil, err
	}
	return &Lock{q: q}, nil
}

// NewLockAt returns a Lock named key (its prefix) on a Client of its own
// for endpoints, with leases of ttl (see NewClient); Close closes that
// client.
func NewLockAt(endpoints []string, key string, ttl time.Duration) (*Lock, error) {
	c, err := NewClient(endpoints, ttl)
	if err != nil {
		return nil, err
	}
	l, err := NewLock(c, key)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	l.q.own = true
	return l, nil
}

// Client returns the client the lock's keys are attached to.
func (l *Lock) Client() *Client { return l.q.c }

// RoundTrips returns how many requests the lock's client has sent.
func (l *Lock) RoundTrips() int64 { return l.q.c.RoundTrips() }

// Close closes the lock's client if NewLockAt made it, and does nothing
// otherwise (the client's owner closes it).
func (l *Lock) Close() error { return l.q.close("Lock.Close") }

// Acquire queues a key and waits until it is the oldest under the prefix,
// or returns ctx.Err() (wrapped, with the last error from etcd if any) once
// ctx is done, deleting its key in the background. Errors from etcd do not
// end the wait before ctx does: the cluster may come back. A key lost with
// its lease while waiting is queued again, at the back.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	const op = "Lock.Acquire"
	if err := l.q.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
	}
	c := l.q.c
	b := backoff{d: 5 * time.Millisecond}
	var last error
	for {
		h, pred, rev, err := l.enqueue(ctx)
		if err == nil {
			if err = l.wait(ctx, h, pred, rev); err == nil {
				return h, nil
			}
			if !errors.Is(err, errSessionLost) {
				h.a.abandon(false)
			}
		}
		switch {
		case ctx.Err() != nil || errors.Is(err, ErrClosed):
			return nil, failure(op, ctx, c, last)
		case errors.Is(err, errSessionLost):
			last = err
			continue // at once, on a new lease
		}
		last = err
		if c.sleep(ctx, &b) != nil {
			return nil, failure(op, ctx, c, last)
		}
	}
}

// enqueue creates an acquisition's key and returns its lease-to-be, the key
// ahead of it ("" if none) and the revision of that answer.
func (l *Lock) enqueue(ctx context.Context) (*Lease, string, int64, error) {
	c := l.q.c
	s, err := c.session(ctx)
	if err != nil {
		return nil, "", 0, err
	}
	a := l.q.attempt(s)
	free, noTomb, put := a.create(0)
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := c.cli.Txn(cctx).
		If(free, noTomb).
		Then(put,
			// The two newest keys: this one and the one ahead of it.
			clientv3.OpGet(l.q.dir(), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(2))).
		Commit()
	cancel()
	switch {
	case leaseGone(err):
		s.markLost(errSessionLost)
		return nil, "", 0, errSessionLost
	case err != nil:
		a.abandon(true) // the reply was lost: the key may exist, or come to
		return nil, "", 0, err
	case !resp.Succeeded:
		// The slot's key is still there: a clean-up not yet done. Leave
		// the slot to it.
		return nil, "", 0, fmt.Errorf("etcdlab: key %q existed before it was created", a.key)
	}
	rev := resp.Header.Revision
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 || kvs[0].CreateRevision != rev {
		a.abandon(false)
		return nil, "", 0, fmt.Errorf("etcdlab: key %q is not the newest right after its creation", a.key)
	}
	pred := ""
	if len(kvs) == 2 {
		pred = string(kvs[1].Key)
	}
	return a.lease(rev, "Lock"), pred, rev, nil
}

// wait returns nil once h's key is the oldest and ctx is not done; else
// ctx.Err(), ErrClosed, or errSessionLost if h's key is gone.
func (l *Lock) wait(ctx context.Context, h *Lease, pred string, rev int64) error {
	c, d := l.q.c, l.q.d
	staleWait := backoff{d: 5 * time.Millisecond}
	for pred != "" {
		s := d.subscribe(rev, pred, h.key)
		woken, err := d.await(ctx, s, h.s)
		hit, stale := d.take(s)
		d.unsubscribe(s)
		switch {
		case err != nil:
			return err
		case slices.Contains(hit, h.key):
			return errSessionLost
		case stale && len(hit) == 0:
			// The watch failed (a member without a leader ends it at
			// once): do not spin on reads and new watches.
			if err := c.sleep(ctx, &staleWait); err != nil {
				return err
			}
		}
		// The key ahead is gone, or the watch lost track of the queue, or
		// said nothing for recheckEvery: look again. The key ahead may
		// have been a waiter that left while the holder still holds.
		old := pred
		b := backoff{d: 5 * time.Millisecond}
		for {
			if pred, rev, err = l.ahead(ctx, h); err == nil {
				break
			}
			if errors.Is(err, errSessionLost) {
				return err
			}
			if err := c.sleep(ctx, &b); err != nil {
				return err
			}
		}
		if !woken && pred != old {
			d.restart(s.gen) // the key ahead went and the watch did not say
		}
	}
	// ctx done before this key's turn came (or as it came): fail, and the
	// caller's clean-up passes the turn on.
	return ctx.Err()
}

// ahead reads, in one read, whether h's key still exists and which key is
// just ahead of it. See serializable for why the read need not go through
// the leader.
func (l *Lock) ahead(ctx context.Context, h *Lease) (string, int64, error) {
	var resp *clientv3.TxnResponse
	err := readFrom(ctx, h.rev, func(ctx context.Context, opts ...clientv3.OpOption) (int64, error) {
		var err error
		resp, err = l.q.c.cli.Txn(ctx).Then(
			clientv3.OpGet(h.key, append(opts, clientv3.WithKeysOnly())...),
			clientv3.OpGet(l.q.dir(), append(opts, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(h.rev-1),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(1))...),
		).Commit()
		if err != nil {
			return 0, err
		}
		return resp.Header.Revision, nil
	})
	if err != nil {
		return "", 0, err
	}
	if mine := resp.Responses[0].GetResponseRange().Kvs; len(mine) == 0 || mine[0].CreateRevision != h.rev {
		return "", 0, errSessionLost
	}
	pred := ""
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		pred = string(kvs[0].Key)
	}
	return pred, resp.Header.Revision, nil
}

// readFrom runs read, bounded by requestTimeout, first as a serializable
// read (served by whichever member the request reaches, from what it has
// applied, without asking the leader), and again as a linearizable one if
// that member had not yet applied revision rev, the waiter's own key's.
//
// A waiter may read serializably because what it looks for only goes one
// way: the keys ahead of its own were all created before it, so none can
// appear after its key has, and they can only be deleted. A member's state
// at a revision R >= rev is the cluster's at R (it applies only committed
// entries): if it shows no key ahead (or enough permits free ahead), that
// was true at R and stays true; if it shows one that is gone by now, the
// waiter waits for its deletion, which the watch from R reports at once.
// So a stale answer can delay a waiter, never admit it early, and it saves
// the leader's round of a linearizable read on every hand-off.
func readFrom(ctx context.Context, rev int64, read func(context.Context, ...clientv3.OpOption) (int64, error)) error {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	at, err := read(cctx, clientv3.WithSerializable())
	if err != nil || at >= rev {
		return err
	}
	_, err = read(cctx)
	return err
}

// TryAcquire creates its key only if no key is under the prefix, in one
// transaction: the lease, or contend.ErrHeld (wrapped) if any key was there
// (a holder, or a waiter that will hold). A request whose reply is lost is
// abandoned (see the package doc) and its error returned.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	const op = "Lock.TryAcquire"
	if err := l.q.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
	}
	c := l.q.c
	for range 3 { // a lease found gone is replaced, at most twice
		s, err := c.session(ctx)
		if err != nil {
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		}
		a := l.q.attempt(s)
		_, noTomb, put := a.create(0)
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := c.cli.Txn(cctx).If(empty(l.q.dir()), noTomb).Then(put).Commit()
		cancel()
		switch {
		case leaseGone(err):
			s.markLost(errSessionLost)
			continue
		case err != nil:
			a.abandon(true)
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		case !resp.Succeeded:
			a.free() // nothing was written
			return nil, fmt.Errorf("etcdlab: %s: %w", op, contend.ErrHeld)
		}
		return a.lease(resp.Header.Revision, "Lock"), nil
	}
	return nil, fmt.Errorf("etcdlab: %s: %w", op, errSessionLost)
}
