package zklab

import (
	"context"
	"time"

	"github.com/contend-lab/contend"
)

// lockKind names a Lock's nodes, and lockMark is the data of its parent.
const (
	lockKind = "lock"
	lockMark = "contend lock"
)

// Lock is a contend.Lock on ZooKeeper, the recipe of ZooKeeper's
// documentation: each contender creates an ephemeral sequential node under
// the lock's path, the lowest node holds, and each waiter watches only the
// node just below its own (no herd), listing the queue again when that
// watch fires before it believes it holds.
//
// Guarantees, while a quorum of the servers runs:
//   - At most one live lease: ZooKeeper orders the creates and deletes, and
//     a contender holds only once a listing shows it lowest.
//   - Fencing tokens (the node's creation zxid, Czxid) strictly increase
//     from holder to holder, across leader changes and restarts.
//   - FIFO: contenders hold in the order of their creates.
//   - A lease ends with its session: the holder crashed, or was cut off
//     from the servers for the session timeout. Lease.TTL says how long it
//     is sure to last; Release and Extend then return ErrNotHeld.
//
// Not guaranteed: exclusion of the work past the session's expiry (a
// holder that stalls past it is no longer the holder but may not know it:
// not safe without fencing); TryAcquire keeps the contract's weaker rule
// (the hand-off deviation) while an Acquire whose ctx has ended is leaving
// the queue. See the package doc for the costs in round trips.
type Lock struct {
	Handle
}

var _ contend.Lock = (*Lock)(nil)

// NewLock returns the Lock whose queue is under the znode path, on client
// c. It creates path (and its ancestors) if missing, marked as a lock's,
// and refuses a path that a Semaphore uses. The round trips are bounded by
// the client's setup timeout.
func NewLock(c *Client, path string) (*Lock, error) { return newLock(NewHandle(c, path)) }

// NewLockAt dials its own client on endpoints with a session timeout of
// ttl, and returns the Lock on PathFor(key) on it. Close closes the
// client. This is the registry's constructor.
func NewLockAt(endpoints []string, key string, ttl time.Duration) (*Lock, error) {
	h, err := DialAt(endpoints, key, ttl)
	if err != nil {
		return nil, err
	}
	l, err := newLock(h)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return l, nil
}

func newLock(h Handle) (*Lock, error) {
	if err := h.c.setupParent("NewLock", h.path, lockMark, func(data []byte) bool {
		return len(data) == 0 || string(data) == lockMark
	}); err != nil {
		return nil, err
	}
	return &Lock{Handle: h}, nil
}

// Acquire joins the queue and waits until its node is the lowest, or
// returns ctx.Err() (wrapped) once ctx is done; its node is then deleted in
// the background (Settle waits for that). A connection lost or a server
// down does not end the wait before ctx does; a session that expires while
// it waits costs it its place, and it joins the queue again at the end.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if err := l.Check(ctx, "zklab: Lock.Acquire"); err != nil {
		return nil, err
	}
	return l.queue().acquire(ctx, 1, false)
}

// TryAcquire joins the queue and looks once: if its node is the lowest it
// holds; otherwise it leaves the queue and returns ErrHeld (wrapped). It
// leaves with a transaction that deletes its node only if the node below it
// still exists, so that its node was never the lowest, and a queue whose
// lowest node is a TryAcquire's is always held or about to be; if that node
// is gone it looks again. Costs three round trips either way (create,
// list, and the token's read or the leaving transaction).
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := l.Check(ctx, "zklab: Lock.TryAcquire"); err != nil {
		return nil, err
	}
	return l.queue().acquire(ctx, 1, true)
}

// queue returns the lock as a queue: a semaphore of one permit.
func (l *Lock) queue() queue {
	return queue{Handle: &l.Handle, kind: lockKind, capacity: 1, what: "Lock"}
}
