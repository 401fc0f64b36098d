package zklab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/contend-lab/contend"
)

// semKind names a Semaphore's nodes; semMark is the prefix of its
// parent's data, which records the capacity.
const (
	semKind = "sem"
	semMark = "contend semaphore capacity="
)

// MaxCapacity is the largest capacity a Semaphore accepts.
const MaxCapacity = math.MaxInt32

// Semaphore is a contend.Semaphore on ZooKeeper in the style of Curator's
// InterProcessSemaphoreV2: each acquirer creates an ephemeral sequential
// node under the semaphore's path, naming in it the permits it asks for,
// and the nodes hold in FIFO order as long as they fit: node i holds once
// the permits of the nodes up to and including i are at most the
// capacity, so a large request blocks smaller ones behind it, as in
// golang.org/x/sync/semaphore. The capacity is recorded in the path's
// znode, and every Semaphore on the path must agree with it.
//
// Guarantees, while a quorum of the servers runs: never more than Capacity
// permits in live leases; fencing tokens (the node's Czxid) that strictly
// increase in the order of grants; FIFO; a lease ends with its session
// (see Lock). No herd: the first waiter watches the queue, every other
// waiter watches only the node before it, and a waiter that comes to hold
// while someone waits behind it marks its node (one write, sent after the
// grant) so that the next one looks again. Not guaranteed, as for Lock:
// exclusion past a session's expiry, and the exact TryAcquire while an
// Acquire whose ctx has ended leaves the queue.
type Semaphore struct {
	c        *Client
	path     string
	capacity int64
	owned    bool
}

var _ contend.Semaphore = (*Semaphore)(nil)

// NewSemaphore returns the Semaphore of capacity permits (1 to
// MaxCapacity) whose queue is under the znode path, on client c. It
// creates path if missing, recording the capacity in it, and refuses (with
// ErrPathInUse) a path recorded with another capacity or used by a Lock.
// The round trips are bounded by the client's setup timeout.
func NewSemaphore(c *Client, path string, capacity int64) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, MaxCapacity); err != nil {
		return nil, err
	}
	mark := semMark + strconv.FormatInt(capacity, 10)
	if err := c.setupParent("NewSemaphore", path, mark, func(data []byte) bool {
		return string(data) == mark
	}); err != nil {
		return nil, err
	}
	return &Semaphore{c: c, path: path, capacity: capacity}, nil
}

// NewSemaphoreAt dials its own client on endpoints with a session timeout
// of ttl, and returns the Semaphore on PathFor(key) on it. Close closes the
// client. This is the registry's constructor.
func NewSemaphoreAt(endpoints []string, key string, capacity int64, ttl time.Duration) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, MaxCapacity); err != nil {
		return nil, err
	}
	path, err := PathFor(key)
	if err != nil {
		return nil, err
	}
	c, err := Dial(endpoints, ttl)
	if err != nil {
		return nil, err
	}
	s, err := NewSemaphore(c, path, capacity)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return s.capacity }

// Path returns the znode under which the semaphore's queue lives.
func (s *Semaphore) Path() string { return s.path }

// Client returns the client the semaphore runs on.
func (s *Semaphore) Client() *Client { return s.c }

// Settle waits for the client's background clean-ups (Client.Settle).
func (s *Semaphore) Settle(ctx context.Context) error { return s.c.Settle(ctx) }

// RoundTrips returns the requests the semaphore's client has sent
// (Client.RoundTrips).
func (s *Semaphore) RoundTrips() int64 { return s.c.RoundTrips() }

// Close closes the client if the semaphore dialled it (NewSemaphoreAt);
// otherwise it does nothing.
func (s *Semaphore) Close() error {
	if s.c == nil {
		return fmt.Errorf("zklab: Semaphore.Close: %w", contend.ErrNotConstructed)
	}
	if s.owned {
		return s.c.Close()
	}
	return nil
}

func (s *Semaphore) ready(op string, ctx context.Context, n int64) error {
	switch {
	case s.c == nil:
		return fmt.Errorf("zklab: Semaphore.%s: %w", op, contend.ErrNotConstructed)
	case n < 1 || n > s.capacity:
		return &contend.PermitError{N: n, Capacity: s.capacity}
	case s.c.closed.Load():
		return fmt.Errorf("zklab: Semaphore.%s: %w", op, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zklab: Semaphore.%s: %w", op, err)
	}
	return nil
}

// Acquire joins the queue asking for n permits and waits until they fit,
// or returns ctx.Err() (wrapped) once ctx is done, as Lock.Acquire does.
// n outside [1, Capacity] is a *contend.PermitError, at once.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.ready("Acquire", ctx, n); err != nil {
		return nil, err
	}
	for {
		m, err := s.c.create(ctx, s.path, semKind, n, true)
		if err != nil {
			return nil, fmt.Errorf("zklab: Semaphore.Acquire: %w", err)
		}
		lease, err := s.wait(ctx, m, false)
		if !errors.Is(err, errRequeue) {
			return lease, err
		}
	}
}

// TryAcquire joins the queue and looks once: if its n permits fit it
// holds; otherwise it leaves and returns ErrHeld (wrapped), deleting its
// node in one transaction with a check that enough of the nodes before it
// still exist that it never fitted (as Lock.TryAcquire does).
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.ready("TryAcquire", ctx, n); err != nil {
		return nil, err
	}
	m, err := s.c.create(ctx, s.path, semKind, n, false)
	if err != nil {
		return nil, fmt.Errorf("zklab: Semaphore.TryAcquire: %w", err)
	}
	lease, err := s.wait(ctx, m, true)
	if errors.Is(err, errRequeue) {
		err = fmt.Errorf("zklab: Semaphore.TryAcquire: %w", zk.ErrSessionExpired)
	}
	return lease, err
}

// fitting returns how many nodes at the head of q hold: the longest prefix
// whose permits add up to at most capacity.
func fitting(q []node, capacity int64) int {
	var sum int64
	for i, nd := range q {
		if nd.n > capacity-sum {
			return i
		}
		sum += nd.n
	}
	return len(q)
}

// blockers returns the fewest nodes of ahead whose permits, with n, exceed
// capacity: while they all exist, a node asking for n behind them cannot
// fit.
func blockers(ahead []node, n, capacity int64) []node {
	sorted := slices.Clone(ahead)
	slices.SortFunc(sorted, func(a, b node) int { return int(min(max(b.n-a.n, -1), 1)) })
	sum := n
	for i, nd := range sorted {
		sum += nd.n
		if sum > capacity {
			return sorted[:i+1]
		}
	}
	return sorted
}

// wait holds once m's permits fit. See Acquire and TryAcquire.
func (s *Semaphore) wait(ctx context.Context, m mine, try bool) (contend.Lease, error) {
	op := "Acquire"
	if try {
		op = "TryAcquire"
	}
	fail := func(err error) (contend.Lease, error) {
		s.c.abandonPath(s.path, "", m.path)
		return nil, fmt.Errorf("zklab: Semaphore.%s: %w", op, err)
	}
	b := newBackoff()
	var kidsCh <-chan zk.Event // a watch on the queue, set by the last listing
	watchQueue := false        // list with a watch: m is the first waiter
	for {
		var kids []string
		var err error
		if watchQueue {
			kids, kidsCh, err = s.c.childrenW(ctx, s.path)
		} else {
			kids, err = s.c.children(ctx, s.path)
			kidsCh = nil
		}
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
		q := queue(semKind, kids)
		i := indexOf(q, m.name)
		if i < 0 || !m.sess.Alive() {
			return nil, errRequeue
		}
		first := fitting(q, s.capacity) // the first waiter, or len(q)
		switch {
		case i < first:
			lease, err := s.hold(ctx, m, op)
			if err == nil && i+1 < len(q) {
				// The next node may be watching this one, from when this
				// one did not fit: wake it.
				s.c.background(func() { _, _ = s.c.conn.Set(m.path, []byte("holds"), -1) })
			}
			return lease, err
		case try:
			err := s.c.leave(ctx, m.path, s.path, blockers(q[:i], m.n, s.capacity))
			switch {
			case err == nil:
				return nil, fmt.Errorf("zklab: Semaphore.TryAcquire: %w", contend.ErrHeld)
			case errors.Is(err, zk.ErrNoNode):
				continue // one of them is gone: look again
			}
			return fail(err)
		case i == first:
			// The first waiter: any node that goes may let it in.
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
		// Behind another waiter: wait for it to go, or to hold (its mark).
		watchQueue = false
		ok, st, ch, err := s.c.existsW(ctx, s.path+"/"+q[i-1].name)
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

// hold makes m's lease once its permits fit: it reads the node's Czxid for
// the token.
func (s *Semaphore) hold(ctx context.Context, m mine, op string) (contend.Lease, error) {
	tok, err := s.c.token(ctx, m)
	if err != nil {
		if errors.Is(err, errRequeue) {
			return nil, err
		}
		s.c.abandonPath(s.path, "", m.path)
		return nil, fmt.Errorf("zklab: Semaphore.%s: %w", op, err)
	}
	return &lease{c: s.c, what: "Semaphore", path: m.path, sess: m.sess, token: tok}, nil
}
