package etcdlab

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/contend-lab/contend"
)

// queue is the key space of one lock or semaphore: the acquisitions' keys
// under base/, tombstones of abandoned attempts under base!abandoned/, and
// a semaphore's capacity at base!capacity. Only base/ is the queue, so the
// other keys never count as waiters.
//
// An acquisition's key is base/<lease id>-<slot>: a slot is a small number
// that the client reuses once the key it named is deleted. A key per
// acquisition would do, but etcd keeps every deleted key in its index until
// the cluster is compacted, and every read of the queue walks them: without
// compaction an acquisition cost more the more acquisitions had come before
// it. With slots, the queue's index holds as many keys as the clients ever
// had acquisitions at once.
type queue struct {
	c     *Client
	base  string
	d     *deletions // the waiters' watch of base/
	slots *slots
	own   bool // made by NewLockAt or NewSemaphoreAt: Close closes c
}

func newQueue(op string, c *Client, prefix string) (queue, error) {
	if c == nil {
		return queue{}, fmt.Errorf("etcdlab: %s: nil client", op)
	}
	if err := c.check(op); err != nil {
		return queue{}, err
	}
	if prefix == "" {
		return queue{}, fmt.Errorf("etcdlab: %s: empty prefix", op)
	}
	return queue{c: c, base: prefix, d: newDeletions(c, prefix+"/"), slots: &slots{}}, nil
}

func (q *queue) check(op string) error {
	if q.c == nil {
		return fmt.Errorf("etcdlab: %s: %w", op, contend.ErrNotConstructed)
	}
	return q.c.check(op)
}

func (q *queue) dir() string { return q.base + "/" }

func (q *queue) close(op string) error {
	if q.c == nil {
		return fmt.Errorf("etcdlab: %s: %w", op, contend.ErrNotConstructed)
	}
	if q.own {
		return q.c.Close()
	}
	return nil
}

// slots hands out the slot numbers of one queue's keys on one session.
type slots struct {
	mu   sync.Mutex
	sess *session
	free []int
	next int
}

func (p *slots) take(s *session) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != s { // a new lease: new key names, from slot 0
		p.sess, p.free, p.next = s, nil, 0
	}
	if n := len(p.free); n > 0 {
		slot := p.free[n-1]
		p.free = p.free[:n-1]
		return slot
	}
	p.next++
	return p.next - 1
}

func (p *slots) put(s *session, slot int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess == s {
		p.free = append(p.free, slot)
	}
}

// attempt is one try to queue a key: a slot's key on a session, and an id
// of the attempt's own, which is the key's value (after a semaphore's
// permit count) and names its tombstone. The slot is the attempt's until
// its key is known to be absent (free).
type attempt struct {
	q    *queue
	s    *session
	slot int
	key  string
	id   string
	once sync.Once
}

func (q *queue) attempt(s *session) *attempt {
	slot := q.slots.take(s)
	return &attempt{q: q, s: s, slot: slot, key: fmt.Sprintf("%s/%x-%d", q.base, int64(s.id), slot),
		id: crand.Text()} // 26 base32 characters, 130 bits
}

// tomb is the attempt's tombstone: written when a reply was lost, checked
// by the creating transaction, so that the request does nothing if it is
// applied after it was given up on.
func (a *attempt) tomb() string { return a.q.base + "!abandoned/" + a.id }

// create returns the conditions (the key absent, the attempt not
// tombstoned) and the write that queue the key: a lock's key holds the
// attempt's id, a semaphore's its permits and the id (permits > 0).
func (a *attempt) create(permits int64) (clientv3.Cmp, clientv3.Cmp, clientv3.Op) {
	value := a.id
	if permits > 0 {
		value = strconv.FormatInt(permits, 10) + "/" + a.id
	}
	return absent(a.key), absent(a.tomb()), clientv3.OpPut(a.key, value, clientv3.WithLease(a.s.id))
}

// free gives the slot back: the key is known to be absent.
func (a *attempt) free() { a.once.Do(func() { a.q.slots.put(a.s, a.slot) }) }

// lease makes the attempt's key, created at rev, a lease.
func (a *attempt) lease(rev int64, what string) *Lease {
	return &Lease{c: a.q.c, a: a, s: a.s, key: a.key, rev: rev, base: a.q.base, what: what}
}

// abandon deletes the attempt's key in the background, then frees the
// slot; if the request that creates it may still be applied later (its
// reply was lost), it writes the tombstone in the same transaction, on the
// same lease. The key is the attempt's whatever state it is in: its slot
// is not handed out again until this is done. It gives up when the lease is
// gone (and the key with it) or the client closes.
func (a *attempt) abandon(replyLost bool) {
	c := a.q.c
	c.cleanups.add()
	go func() {
		defer c.cleanups.done()
		b := backoff{d: 5 * time.Millisecond}
		for !a.s.isLost() && !c.closed() {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			ops := []clientv3.Op{clientv3.OpDelete(a.key)}
			if replyLost {
				ops = append(ops, clientv3.OpPut(a.tomb(), "", clientv3.WithLease(a.s.id)))
			}
			_, err := c.cli.Txn(ctx).Then(ops...).Commit()
			cancel()
			if err == nil {
				a.free()
				return
			}
			if leaseGone(err) {
				return
			}
			select {
			case <-time.After(b.next()):
			case <-a.s.lost:
			case <-c.done:
			}
		}
	}()
}
