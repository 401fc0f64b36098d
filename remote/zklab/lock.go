package zklab

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

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
	c     *Client
	path  string
	owned bool // Close closes c
}

var _ contend.Lock = (*Lock)(nil)

// NewLock returns the Lock whose queue is under the znode path, on client
// c. It creates path (and its ancestors) if missing, marked as a lock's,
// and refuses a path that a Semaphore uses. The round trips are bounded by
// the client's setup timeout.
func NewLock(c *Client, path string) (*Lock, error) {
	if err := c.setupParent("NewLock", path, lockMark, func(data []byte) bool {
		return len(data) == 0 || string(data) == lockMark
	}); err != nil {
		return nil, err
	}
	return &Lock{c: c, path: path}, nil
}

// NewLockAt dials its own client on endpoints with a session timeout of
// ttl, and returns the Lock on PathFor(key) on it. Close closes the
// client. This is the registry's constructor.
func NewLockAt(endpoints []string, key string, ttl time.Duration) (*Lock, error) {
	path, err := PathFor(key)
	if err != nil {
		return nil, err
	}
	c, err := Dial(endpoints, ttl)
	if err != nil {
		return nil, err
	}
	l, err := NewLock(c, path)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	l.owned = true
	return l, nil
}

// setupParent creates path marked with mark, or checks with accept that an
// existing one may be used, within the client's setup timeout.
func (c *Client) setupParent(who, path, mark string, accept func([]byte) bool) error {
	if c == nil || c.conn == nil {
		return fmt.Errorf("zklab: %s: nil client: %w", who, contend.ErrNotConstructed)
	}
	if c.closed.Load() {
		return fmt.Errorf("zklab: %s: %w", who, ErrClosed)
	}
	if err := checkPath(path); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.setup)
	defer cancel()
	data, err := c.ensure(ctx, path, []byte(mark))
	if err != nil {
		return fmt.Errorf("zklab: %s(%q): %w", who, path, err)
	}
	if !accept(data) {
		return fmt.Errorf("zklab: %s(%q): %w: its znode is marked %q", who, path, ErrPathInUse, data)
	}
	return nil
}

// ErrPathInUse is returned (wrapped) by a constructor for a path that a
// lock or semaphore of another kind, or of another capacity, uses.
var ErrPathInUse = errors.New("zklab: the path is used by another kind of lock or semaphore")

// Path returns the znode under which the lock's queue lives.
func (l *Lock) Path() string { return l.path }

// Client returns the client the lock runs on.
func (l *Lock) Client() *Client { return l.c }

// Settle waits for the client's background clean-ups (Client.Settle): the
// nodes of Acquires that gave up. Until then such a node can stand first
// in the queue with nobody to hold, and TryAcquire reports ErrHeld.
func (l *Lock) Settle(ctx context.Context) error { return l.c.Settle(ctx) }

// RoundTrips returns the requests the lock's client has sent
// (Client.RoundTrips: those of everything else on the same client too).
func (l *Lock) RoundTrips() int64 { return l.c.RoundTrips() }

// Close closes the client if the lock dialled it (NewLockAt), ending its
// session and every lease of it; otherwise it does nothing.
func (l *Lock) Close() error {
	if l.c == nil {
		return fmt.Errorf("zklab: Lock.Close: %w", contend.ErrNotConstructed)
	}
	if l.owned {
		return l.c.Close()
	}
	return nil
}

func (l *Lock) ready(op string, ctx context.Context) error {
	switch {
	case l.c == nil:
		return fmt.Errorf("zklab: Lock.%s: %w", op, contend.ErrNotConstructed)
	case l.c.closed.Load():
		return fmt.Errorf("zklab: Lock.%s: %w", op, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zklab: Lock.%s: %w", op, err)
	}
	return nil
}

// Acquire joins the queue and waits until its node is the lowest, or
// returns ctx.Err() (wrapped) once ctx is done; its node is then deleted in
// the background (Client.Settle waits for that). A connection lost or a
// server down does not end the wait before ctx does; a session that
// expires while it waits costs it its place, and it joins the queue again
// at the end.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if err := l.ready("Acquire", ctx); err != nil {
		return nil, err
	}
	for {
		m, err := l.c.create(ctx, l.path, lockKind, 1, true)
		if err != nil {
			return nil, fmt.Errorf("zklab: Lock.Acquire: %w", err)
		}
		lease, err := l.wait(ctx, m, false)
		if !errors.Is(err, errRequeue) {
			return lease, err
		}
	}
}

// TryAcquire joins the queue and looks once: if its node is the lowest it
// holds; otherwise it leaves the queue and returns ErrHeld (wrapped). It
// leaves with a transaction that deletes its node only if the node below it
// still exists, so that its node was never the lowest, and a queue whose
// lowest node is a TryAcquire's is always held or about to be; if that node
// is gone it looks again. Costs three round trips either way (create,
// list, and the token's read or the leaving transaction).
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := l.ready("TryAcquire", ctx); err != nil {
		return nil, err
	}
	m, err := l.c.create(ctx, l.path, lockKind, 1, false)
	if err != nil {
		return nil, fmt.Errorf("zklab: Lock.TryAcquire: %w", err)
	}
	lease, err := l.wait(ctx, m, true)
	if errors.Is(err, errRequeue) {
		err = fmt.Errorf("zklab: Lock.TryAcquire: %w", zk.ErrSessionExpired)
	}
	return lease, err
}

// errRequeue means that a contender's node is gone with its session and it
// must join the queue again.
var errRequeue = errors.New("zklab: the node went with its session")

// wait holds once m is the lowest node of the queue. See Acquire and
// TryAcquire.
func (l *Lock) wait(ctx context.Context, m mine, try bool) (contend.Lease, error) {
	op := "Acquire"
	if try {
		op = "TryAcquire"
	}
	fail := func(err error) (contend.Lease, error) {
		l.c.abandonPath(l.path, "", m.path)
		return nil, fmt.Errorf("zklab: Lock.%s: %w", op, err)
	}
	b := newBackoff()
	for {
		kids, err := l.c.children(ctx, l.path)
		if err != nil {
			if !m.sess.Alive() {
				return nil, errRequeue
			}
			if try || ctx.Err() != nil || definitive(err) {
				return fail(err)
			}
			if err := sleep(ctx, b.next()); err != nil {
				return fail(err)
			}
			continue
		}
		q := queue(lockKind, kids)
		i := indexOf(q, m.name)
		switch {
		case i < 0 || !m.sess.Alive():
			return nil, errRequeue
		case i == 0:
			return l.hold(ctx, m, op)
		case try:
			err := l.c.leave(ctx, m.path, l.path, q[i-1:i])
			switch {
			case err == nil:
				return nil, fmt.Errorf("zklab: Lock.TryAcquire: %w", contend.ErrHeld)
			case errors.Is(err, zk.ErrNoNode):
				continue // the node below is gone: look again
			}
			return fail(err)
		}
		// Wait for the node just below to go.
		ok, _, ch, err := l.c.existsW(ctx, l.path+"/"+q[i-1].name)
		switch {
		case err != nil && ctx.Err() != nil:
			return fail(err)
		case err != nil:
			if err := sleep(ctx, b.next()); err != nil {
				return fail(err)
			}
			continue
		case !ok:
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

// hold makes m's lease, once m is the lowest node: it reads the node's
// Czxid for the token. A ctx that is done by now fails the acquire (it may
// have ended before the lock was handed over).
func (l *Lock) hold(ctx context.Context, m mine, op string) (contend.Lease, error) {
	tok, err := l.c.token(ctx, m)
	if err != nil {
		if errors.Is(err, errRequeue) {
			return nil, err
		}
		l.c.abandonPath(l.path, "", m.path)
		return nil, fmt.Errorf("zklab: Lock.%s: %w", op, err)
	}
	return &lease{c: l.c, what: "Lock", path: m.path, sess: m.sess, token: tok}, nil
}

// token reads m's Czxid, the lease's fencing token. A ctx that is done by
// now fails it.
func (c *Client) token(ctx context.Context, m mine) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ok, st, err := c.exists(ctx, m.path)
	switch {
	case err != nil:
		return 0, err
	case !ok || !m.sess.Alive():
		return 0, errRequeue
	case ctx.Err() != nil:
		return 0, ctx.Err()
	}
	return uint64(st.Czxid), nil
}
