package zklab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/contend-lab/contend"
)

// queue is a Lock's or a Semaphore's queue of nodes: node i holds once the
// permits of the nodes up to and including it are at most capacity. A Lock
// is the queue of capacity 1.
//
// Waiting, without a herd: a waiter watches the node just before it, and
// looks again when that node goes. With capacity 1 that is all it needs
// (the node before the first waiter is the holder). With more, the first
// waiter can be let in by any holder going, so it watches the whole queue
// instead, and a waiter that comes to hold while a node behind it waits
// marks its own node (sets its data), since that node may be watching it
// from when it did not fit.
type queue struct {
	*Handle
	kind     string
	capacity int64
	what     string // "Lock" or "Semaphore", for messages
}

// errRequeue means that a contender's node is gone with its session and it
// must join the queue again.
var errRequeue = errors.New("zklab: the node went with its session")

// acquire joins the queue asking for n permits and holds once they fit;
// with try it looks once.
func (q queue) acquire(ctx context.Context, n int64, try bool) (contend.Lease, error) {
	op := q.what + ".Acquire"
	if try {
		op = q.what + ".TryAcquire"
	}
	for {
		m, err := q.c.create(ctx, q.path, q.kind, n, !try)
		if err != nil {
			return nil, fmt.Errorf("zklab: %s: %w", op, err)
		}
		lease, err := q.wait(ctx, m, q.c.readToken(ctx, m), try, op)
		switch {
		case !errors.Is(err, errRequeue):
			return lease, err
		case try:
			return nil, fmt.Errorf("zklab: %s: %w", op, zk.ErrSessionExpired)
		}
	}
}

// fitting returns how many nodes at the head of nodes hold: the longest
// prefix whose permits add up to at most capacity.
func fitting(nodes []node, capacity int64) int {
	var sum int64
	for i, nd := range nodes {
		if nd.n > capacity-sum {
			return i
		}
		sum += nd.n
	}
	return len(nodes)
}

// blockers returns the fewest nodes of ahead whose permits, with n, exceed
// capacity: while they all exist, a node asking for n behind them cannot
// fit. Among equals it prefers the nodes nearest the end, waiters rather
// than holders, which are the likeliest to still be there.
func blockers(ahead []node, n, capacity int64) []node {
	sorted := slices.Clone(ahead)
	slices.SortFunc(sorted, func(a, b node) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(b.seq, a.seq))
	})
	sum := n
	for i, nd := range sorted {
		sum += nd.n
		if sum > capacity {
			return sorted[:i+1]
		}
	}
	return sorted
}

// wait holds once m fits, with the token that early delivers. See
// Lock.Acquire and Lock.TryAcquire.
func (q queue) wait(ctx context.Context, m mine, early <-chan tokenRead, try bool, op string) (contend.Lease, error) {
	fail := func(err error) (contend.Lease, error) {
		q.c.abandonPath(q.path, "", m.path)
		return nil, fmt.Errorf("zklab: %s: %w", op, err)
	}
	b := newBackoff()
	// A TryAcquire gives a lost connection a third of the session timeout
	// to come back (go-zookeeper has reconnected, or given up, by then);
	// an Acquire waits for it as long as ctx lets it.
	patience := time.Now().Add(q.c.timeout / 3)
	var kidsCh <-chan zk.Event // a watch on the queue, set by the last listing
	watchQueue := false        // list with a watch: m is the first waiter
	for {
		var kids []string
		var err error
		if watchQueue {
			kids, kidsCh, err = q.c.childrenW(ctx, q.path)
		} else {
			kids, err = q.c.children(ctx, q.path)
			kidsCh = nil
		}
		if err != nil {
			if !m.sess.Alive() {
				return nil, errRequeue
			}
			if ctx.Err() != nil || definitive(err) || try && time.Now().After(patience) {
				return fail(err)
			}
			if err := sleep(ctx, b.next()); err != nil {
				return fail(err)
			}
			continue
		}
		nodes := queueOf(q.kind, kids)
		i := indexOf(nodes, m.name)
		if i < 0 || !m.sess.Alive() {
			return nil, errRequeue
		}
		first := fitting(nodes, q.capacity) // the first waiter, or len(nodes)
		switch {
		case i < first:
			lease, err := q.hold(ctx, m, early, op)
			if err == nil && q.capacity > 1 && i+1 < len(nodes) {
				// The next node may be watching this one, from when this
				// one did not fit: wake it.
				q.c.background(func() { _, _ = q.c.conn.Set(m.path, []byte("holds"), -1) })
			}
			return lease, err
		case try:
			err := q.c.leave(ctx, m.path, q.path, blockers(nodes[:i], m.n, q.capacity))
			switch {
			case err == nil:
				return nil, fmt.Errorf("zklab: %s: %w", op, contend.ErrHeld)
			case errors.Is(err, zk.ErrNoNode):
				continue // one of them is gone (or own node, with its session): look again
			case !definitive(err) && ctx.Err() == nil && time.Now().Before(patience):
				if err := sleep(ctx, b.next()); err != nil {
					return fail(err)
				}
				continue // the outcome is unknown: look again
			}
			return fail(err)
		case i == first && q.capacity > 1:
			// The first waiter: any holder that goes may let it in.
			if kidsCh == nil {
				watchQueue = true
				continue // list again, with a watch
			}
			select {
			case <-kidsCh:
				continue
			case <-ctx.Done():
				return fail(ctx.Err())
			}
		}
		// Wait for the node before to go, or to hold (its mark).
		watchQueue = false
		ok, st, ch, err := q.c.existsW(ctx, q.path+"/"+nodes[i-1].name)
		switch {
		case err != nil && ctx.Err() != nil:
			return fail(err)
		case err != nil:
			if err := sleep(ctx, b.next()); err != nil {
				return fail(err)
			}
			continue
		case !ok || st.Version > 0:
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

// tokenRead is the outcome of reading a node's Czxid.
type tokenRead struct {
	tok uint64
	err error
}

// readToken starts reading m's Czxid, the lease's fencing token, as soon
// as the node is made: a node's Czxid never changes, so the read overlaps
// the listing and the wait instead of adding a round trip to every
// hand-off.
func (c *Client) readToken(ctx context.Context, m mine) <-chan tokenRead {
	ch := make(chan tokenRead, 1)
	go func() {
		tok, err := c.token(ctx, m)
		ch <- tokenRead{tok, err}
	}()
	return ch
}

// hold makes m's lease once it fits, with the token early read (read again
// if that read failed for a reason that may pass). A ctx that is done by
// now fails the acquire (it may have ended before the permits were handed
// over), and so does m's session having ended.
func (q queue) hold(ctx context.Context, m mine, early <-chan tokenRead, op string) (contend.Lease, error) {
	var r tokenRead
	select {
	case r = <-early:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	if r.err != nil && !errors.Is(r.err, errRequeue) && !definitive(r.err) && ctx.Err() == nil {
		r.tok, r.err = q.c.token(ctx, m)
	}
	tok, err := r.tok, r.err
	switch {
	case err != nil:
	case !m.sess.Alive():
		err = errRequeue
	case ctx.Err() != nil:
		err = ctx.Err()
	}
	if err != nil {
		if errors.Is(err, errRequeue) {
			return nil, err
		}
		q.c.abandonPath(q.path, "", m.path)
		return nil, fmt.Errorf("zklab: %s: %w", op, err)
	}
	return &lease{c: q.c, what: q.what, path: m.path, sess: m.sess, token: tok}, nil
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
