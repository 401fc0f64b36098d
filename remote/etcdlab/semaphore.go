package etcdlab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/contend-lab/contend"
)

// ErrCapacityMismatch is returned (wrapped) by a Semaphore's acquisitions
// when the capacity recorded for its prefix differs from its own: every
// Semaphore on a prefix must have the same capacity, or each would admit by
// its own count.
var ErrCapacityMismatch = errors.New("etcdlab: the semaphore's prefix was created with another capacity")

// Semaphore is a contend.Semaphore of Capacity permits on etcd, which has
// none of its own: the lock's queue (see the package doc) where each key's
// value is the number of permits it asks for, and a key holds while the
// permits of every key ahead of it plus its own fit in the capacity.
// Holders are therefore always the front of the queue, and never hold more
// than Capacity permits together. A waiter reads the queue once and then
// follows the deletions of the keys ahead of it on a watch of the prefix,
// subtracting their permits as they leave: no request per release, but
// every waiter's watch hears every release.
//
// Guarantees, while a quorum serves: never more than Capacity permits held
// as etcd sees it; FIFO (a large request at the front blocks smaller ones
// behind it, as in golang.org/x/sync/semaphore; TryAcquire fails while
// anyone waits); fencing tokens (create revisions) strictly increase from
// one grant to the next; a crashed holder's permits come back a lease TTL
// after its client's last refresh. Contexts and the hand-off deviation as
// for Lock; not safe without fencing, as for Lock.
//
// The capacity is recorded at prefix+"!capacity" by the first acquisition
// and checked by every acquiring transaction: instances that disagree
// fail with ErrCapacityMismatch rather than over-admit. The record has no
// lease; delete it to reuse the prefix with another capacity.
type Semaphore struct {
	q        queue
	capacity int64
	capStr   string
}

var _ contend.Semaphore = (*Semaphore)(nil)

// NewSemaphore returns a Semaphore of capacity permits whose keys are
// prefix+"/<lease>-<slot>" on c's lease, as for NewLock. capacity < 1 is a
// *contend.ConfigError.
func NewSemaphore(c *Client, prefix string, capacity int64) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, math.MaxInt64); err != nil {
		return nil, fmt.Errorf("etcdlab: NewSemaphore: %w", err)
	}
	q, err := newQueue("NewSemaphore", c, prefix)
	if err != nil {
		return nil, err
	}
	return &Semaphore{q: q, capacity: capacity, capStr: strconv.FormatInt(capacity, 10)}, nil
}

// NewSemaphoreAt returns a Semaphore named key (its prefix) on a Client of
// its own for endpoints, with leases of ttl (see NewClient); Close closes
// that client.
func NewSemaphoreAt(endpoints []string, key string, capacity int64, ttl time.Duration) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, math.MaxInt64); err != nil {
		return nil, fmt.Errorf("etcdlab: NewSemaphoreAt: %w", err)
	}
	c, err := NewClient(endpoints, ttl)
	if err != nil {
		return nil, err
	}
	s, err := NewSemaphore(c, key, capacity)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	s.q.own = true
	return s, nil
}

// Capacity returns the number of permits; 0 for the zero value.
func (s *Semaphore) Capacity() int64 { return s.capacity }

// Client returns the client the semaphore's keys are attached to.
func (s *Semaphore) Client() *Client { return s.q.c }

// RoundTrips returns how many requests the semaphore's client has sent.
func (s *Semaphore) RoundTrips() int64 { return s.q.c.RoundTrips() }

// Close closes the semaphore's client if NewSemaphoreAt made it, and does
// nothing otherwise.
func (s *Semaphore) Close() error { return s.q.close("Semaphore.Close") }

func (s *Semaphore) meta() string { return s.q.base + "!capacity" }

// sameCapacity is true if the recorded capacity is this Semaphore's.
func (s *Semaphore) sameCapacity() clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(s.meta()), "=", s.capStr)
}

func (s *Semaphore) check(op string, n int64) error {
	if err := s.q.check(op); err != nil {
		return err
	}
	if n < 1 || n > s.capacity {
		return fmt.Errorf("etcdlab: %s: %w", op, &contend.PermitError{N: n, Capacity: s.capacity})
	}
	return nil
}

// Acquire queues a key for n permits and waits until they fit behind the
// keys ahead of it, or returns ctx.Err() (wrapped) once ctx is done,
// deleting its key in the background; as Lock.Acquire otherwise.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	const op = "Semaphore.Acquire"
	if err := s.check(op, n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
	}
	c := s.q.c
	b := backoff{d: 5 * time.Millisecond}
	var last error
	for {
		h, w, err := s.enqueue(ctx, n)
		if err == nil {
			if err = s.wait(ctx, h, w); err == nil {
				return h, nil
			}
			if !errors.Is(err, errSessionLost) {
				h.a.abandon(false)
			}
		}
		switch {
		case errors.Is(err, ErrCapacityMismatch):
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		case ctx.Err() != nil || errors.Is(err, ErrClosed):
			return nil, failure(op, ctx, c, last)
		case errors.Is(err, errSessionLost):
			last = err
			continue
		}
		last = err
		if c.sleep(ctx, &b) != nil {
			return nil, failure(op, ctx, c, last)
		}
	}
}

// waiter is what a queued key knows of the keys ahead of it.
type waiter struct {
	n      int64
	ahead  map[string]int64 // key -> permits, for the keys ahead still there
	before permitSum        // their sum
	rev    int64            // the revision this view is of
}

func (w *waiter) fits(capacity int64) bool { return w.before.atMost(capacity - w.n) }

// permitSum is a sum of permit counts in 128 bits: a queue's keys can ask
// for more than MaxInt64 permits together, and a waiter subtracts from the
// sum as keys leave, so it must be exact rather than saturated.
type permitSum struct{ hi, lo uint64 }

func (s *permitSum) add(p int64) {
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, uint64(p), 0)
	s.hi += carry
}

func (s *permitSum) sub(p int64) {
	var borrow uint64
	s.lo, borrow = bits.Sub64(s.lo, uint64(p), 0)
	s.hi -= borrow
}

// atMost reports whether the sum is at most x (x >= 0).
func (s permitSum) atMost(x int64) bool { return s.hi == 0 && s.lo <= uint64(x) }

// view builds a waiter for the key created at rev from kvs, the keys with a
// create revision up to rev.
func view(key string, rev, n int64, kvs []*mvccpb.KeyValue, at int64) (*waiter, error) {
	w := &waiter{n: n, ahead: map[string]int64{}, rev: at}
	mine := false
	for _, kv := range kvs {
		switch {
		case string(kv.Key) == key && kv.CreateRevision == rev:
			mine = true
		case kv.CreateRevision < rev:
			p, err := permits(kv)
			if err != nil {
				return nil, err
			}
			w.ahead[string(kv.Key)] = p
			w.before.add(p)
		}
	}
	if !mine {
		return nil, errSessionLost
	}
	return w, nil
}

// permits reads the permit count of a key's value, "<permits>/<attempt>".
func permits(kv *mvccpb.KeyValue) (int64, error) {
	n, _, _ := strings.Cut(string(kv.Value), "/")
	p, err := strconv.ParseInt(n, 10, 64)
	if err != nil || p < 1 {
		return 0, fmt.Errorf("etcdlab: key %q in a semaphore's queue holds %q, not a permit count", kv.Key, kv.Value)
	}
	return p, nil
}

// sum returns the permits of every key in kvs.
func sum(kvs []*mvccpb.KeyValue) (permitSum, error) {
	var total permitSum
	for _, kv := range kvs {
		p, err := permits(kv)
		if err != nil {
			return permitSum{}, err
		}
		total.add(p)
	}
	return total, nil
}

// capacityOK checks the capacity record read in a transaction's else
// branch: nil if it matches (the failure was something else), an error
// wrapping ErrCapacityMismatch if it differs, and it creates the record if
// it is missing.
func (s *Semaphore) capacityOK(ctx context.Context, r *clientv3.GetResponse) error {
	if len(r.Kvs) > 0 {
		if v := string(r.Kvs[0].Value); v != s.capStr {
			return fmt.Errorf("%w: %s holds %s, this Semaphore has %d", ErrCapacityMismatch, s.meta(), v, s.capacity)
		}
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.q.c.cli.Txn(cctx).
		If(absent(s.meta())).
		Then(clientv3.OpPut(s.meta(), s.capStr)).
		Else(clientv3.OpGet(s.meta())).
		Commit()
	if err != nil || resp.Succeeded {
		return err
	}
	return s.capacityOK(ctx, (*clientv3.GetResponse)(resp.Responses[0].GetResponseRange()))
}

// enqueue creates the key for n permits and returns its lease-to-be and its
// view of the queue ahead.
func (s *Semaphore) enqueue(ctx context.Context, n int64) (*Lease, *waiter, error) {
	c := s.q.c
	ss, err := c.session(ctx)
	if err != nil {
		return nil, nil, err
	}
	a := s.q.attempt(ss)
	free, noTomb, put := a.create(n)
	for {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := c.cli.Txn(cctx).
			If(s.sameCapacity(), free, noTomb).
			Then(put, clientv3.OpGet(s.q.dir(), clientv3.WithPrefix())).
			Else(clientv3.OpGet(s.meta())).
			Commit()
		cancel()
		switch {
		case leaseGone(err):
			ss.markLost(errSessionLost)
			return nil, nil, errSessionLost
		case err != nil:
			a.abandon(true)
			return nil, nil, err
		case !resp.Succeeded:
			if err := s.capacityOK(ctx, (*clientv3.GetResponse)(resp.Responses[0].GetResponseRange())); err != nil {
				a.free() // nothing was written
				return nil, nil, err
			}
			continue // the record was missing and is there now
		}
		rev := resp.Header.Revision
		w, err := view(a.key, rev, n, resp.Responses[1].GetResponseRange().Kvs, rev)
		if err != nil {
			a.abandon(false)
			return nil, nil, err
		}
		return a.lease(rev, "Semaphore"), w, nil
	}
}

// wait returns nil once h's permits fit behind the keys ahead and ctx is
// not done; else ctx.Err(), ErrClosed, errSessionLost, or a malformed
// queue's error.
func (s *Semaphore) wait(ctx context.Context, h *Lease, w *waiter) error {
	c, d := s.q.c, s.q.d
	staleWait := backoff{d: 5 * time.Millisecond}
	for !w.fits(s.capacity) {
		keys := make([]string, 0, len(w.ahead)+1)
		keys = append(keys, h.key)
		for k := range w.ahead {
			keys = append(keys, k)
		}
		sb := d.subscribe(w.rev, keys...)
		woken, err := s.follow(ctx, h, w, sb)
		_, stale := d.take(sb)
		d.unsubscribe(sb)
		if err != nil {
			return err
		}
		if w.fits(s.capacity) {
			break
		}
		if stale { // see Lock.wait
			if err := c.sleep(ctx, &staleWait); err != nil {
				return err
			}
		}
		// The watch lost track of the queue, or said nothing for
		// recheckEvery: read again.
		b := backoff{d: 5 * time.Millisecond}
		for {
			nw, err := s.reread(ctx, h, w.n)
			if err == nil {
				if !woken && len(nw.ahead) < len(w.ahead) {
					d.restart(sb.gen) // keys ahead went and the watch did not say
				}
				w = nw
				break
			}
			if errors.Is(err, errSessionLost) {
				return err
			}
			if err := c.sleep(ctx, &b); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// follow takes the permits of the keys ahead off w.before as sb reports
// them deleted, until they fit or sb goes stale (nil, and whether sb woke
// at all), sb stays silent for recheckEvery (nil, false), h's own key is
// deleted (errSessionLost), ctx is done or the client closes.
func (s *Semaphore) follow(ctx context.Context, h *Lease, w *waiter, sb *sub) (bool, error) {
	d := s.q.d
	woken := false
	for {
		ok, err := d.await(ctx, sb, h.s)
		if err != nil || !ok {
			return woken, err
		}
		woken = true
		hit, stale := d.take(sb)
		for _, k := range hit {
			if k == h.key {
				return true, errSessionLost
			}
			if p, ok := w.ahead[k]; ok {
				delete(w.ahead, k)
				w.before.sub(p)
			}
		}
		if stale || w.fits(s.capacity) {
			return true, nil
		}
	}
}

// reread reads the queue up to h's key in one read (see readFrom).
func (s *Semaphore) reread(ctx context.Context, h *Lease, n int64) (*waiter, error) {
	var resp *clientv3.GetResponse
	err := readFrom(ctx, h.rev, func(ctx context.Context, opts ...clientv3.OpOption) (int64, error) {
		var err error
		resp, err = s.q.c.cli.Get(ctx, s.q.dir(), append(opts, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(h.rev))...)
		if err != nil {
			return 0, err
		}
		return resp.Header.Revision, nil
	})
	if err != nil {
		return nil, err
	}
	return view(h.key, h.rev, n, resp.Kvs, resp.Header.Revision)
}

// TryAcquire takes n permits if they are free and nobody waits, or returns
// contend.ErrHeld (wrapped). It first tries, in one transaction, to create
// its key on an empty queue; on a queue that is not empty it computes from
// the same answer whether n fit behind everyone, and if so creates its key
// on the condition that no key was created since that answer, reading again
// each time one was. ErrHeld is decided on one consistent view of the queue.
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	const op = "Semaphore.TryAcquire"
	if err := s.check(op, n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
	}
	c := s.q.c
	ss, err := c.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
	}
	unchanged := empty(s.q.dir()) // first try: the queue is empty
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		}
		a := s.q.attempt(ss)
		_, noTomb, put := a.create(n)
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := c.cli.Txn(cctx).
			If(s.sameCapacity(), unchanged, noTomb).
			Then(put).
			Else(clientv3.OpGet(s.meta()), clientv3.OpGet(s.q.dir(), clientv3.WithPrefix())).
			Commit()
		cancel()
		switch {
		case leaseGone(err) && try < 2:
			ss.markLost(errSessionLost)
			if ss, err = c.session(ctx); err != nil {
				return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
			}
			continue
		case err != nil:
			a.abandon(true)
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		case resp.Succeeded:
			return a.lease(resp.Header.Revision, "Semaphore"), nil
		}
		a.free() // nothing was written
		if err := s.capacityOK(ctx, (*clientv3.GetResponse)(resp.Responses[0].GetResponseRange())); err != nil {
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		}
		total, err := sum(resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return nil, fmt.Errorf("etcdlab: %s: %w", op, err)
		}
		if !total.atMost(s.capacity - n) {
			// Held, or waited for, at this answer's revision.
			return nil, fmt.Errorf("etcdlab: %s: %w", op, contend.ErrHeld)
		}
		// Room at that revision; deletions since only make more.
		unchanged = clientv3.Compare(clientv3.ModRevision(s.q.dir()), "<", resp.Header.Revision+1).WithPrefix()
	}
}
