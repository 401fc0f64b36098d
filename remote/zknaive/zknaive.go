// Package zknaive is the source article's ZooKeeper lock, kept as a broken
// control: the recipe of ephemeral sequential nodes with a watch on the
// predecessor, as the article writes it with kazoo, except that when the
// predecessor's watch fires the waiter believes it holds the lock without
// listing the queue again.
//
// The watch fires whenever the predecessor's node goes, and it goes not
// only when the predecessor releases the lock but also when it leaves the
// queue without ever holding: a waiter whose context ends (it deletes its
// node), or whose session expires (ZooKeeper deletes it). The next waiter
// then takes the lock while the real holder, further ahead, still holds
// it: two holders. The lab's lock (package zklab) lists the queue again
// and watches the new predecessor instead.
//
// Everything else is as in zklab: the same client, leases that end with
// the session, Czxid fencing tokens. Its create is not bounded by ctx
// (the article's code has no context); its waiting is.
package zknaive

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/remote/zklab"
)

// Lock is the article's ZooKeeper lock: see the package doc for its flaw.
// Its methods are safe for concurrent use; the zero value refuses with
// contend.ErrNotConstructed.
type Lock struct {
	zklab.Handle
}

var _ contend.Lock = (*Lock)(nil)

// NewLock returns the lock whose queue is under the znode path (created if
// missing), on client c.
func NewLock(c *zklab.Client, path string) (*Lock, error) {
	h, err := zklab.OpenHandle(c, path)
	if err != nil {
		return nil, fmt.Errorf("zknaive: NewLock: %w", err)
	}
	return &Lock{Handle: h}, nil
}

// NewLockAt dials its own client on endpoints with a session timeout of
// ttl and returns the lock on zklab.PathFor(key); Close closes the
// client. This is the registry's constructor.
func NewLockAt(endpoints []string, key string, ttl time.Duration) (*Lock, error) {
	h, err := zklab.OpenHandleAt(endpoints, key, ttl)
	if err != nil {
		return nil, fmt.Errorf("zknaive: NewLockAt: %w", err)
	}
	return &Lock{Handle: h}, nil
}

// Acquire creates its node, and holds if it is the lowest; otherwise it
// watches the node just below and holds as soon as that node is gone
// (the flaw). If ctx ends first it deletes its node and returns ctx.Err()
// (wrapped).
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if err := l.Check(ctx, "zknaive: Acquire"); err != nil {
		return nil, err
	}
	own, pred, err := l.enqueue()
	if err != nil || pred == "" {
		return l.hold(ctx, own, err)
	}
	conn := l.Client().Conn()
	ch, err := zklab.Do(ctx, l.Client(), func() (<-chan zk.Event, error) {
		ok, _, ch, err := conn.ExistsW(pred)
		if err == nil && !ok {
			return nil, nil // gone already
		}
		return ch, err
	})
	if err != nil {
		return nil, l.leave(own, fmt.Errorf("zknaive: Acquire: %w", err))
	}
	if ch != nil {
		select {
		case <-ch:
			// The article's mistake: whatever made the predecessor go, the
			// lock is taken to be ours.
		case <-ctx.Done():
			return nil, l.leave(own, fmt.Errorf("zknaive: Acquire: %w", ctx.Err()))
		}
	}
	return l.hold(ctx, own, nil)
}

// TryAcquire creates its node and holds if it is the lowest; otherwise it
// deletes it and returns contend.ErrHeld (wrapped).
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := l.Check(ctx, "zknaive: TryAcquire"); err != nil {
		return nil, err
	}
	own, pred, err := l.enqueue()
	if err != nil || pred == "" {
		return l.hold(ctx, own, err)
	}
	return nil, l.leave(own, fmt.Errorf("zknaive: TryAcquire: %w", contend.ErrHeld))
}

// enqueue creates the contender's node and returns its path and the path
// of the node just below it ("" if it is the lowest).
func (l *Lock) enqueue() (own, pred string, err error) {
	conn := l.Client().Conn()
	own, err = conn.Create(l.Path()+"/lock-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		return "", "", fmt.Errorf("zknaive: create: %w", err)
	}
	kids, _, err := conn.Children(l.Path())
	if err != nil {
		return own, "", fmt.Errorf("zknaive: list: %w", err)
	}
	slices.SortFunc(kids, func(a, b string) int { return compareSeq(a, b) })
	name := own[len(l.Path())+1:]
	i := slices.Index(kids, name)
	if i > 0 {
		pred = l.Path() + "/" + kids[i-1]
	}
	return own, pred, nil
}

// compareSeq orders "lock-<seq>" names by sequence number.
func compareSeq(a, b string) int {
	sa, _ := strconv.ParseInt(strings.TrimPrefix(a, "lock-"), 10, 64)
	sb, _ := strconv.ParseInt(strings.TrimPrefix(b, "lock-"), 10, 64)
	return int(min(max(sa-sb, -1), 1))
}

// hold reads own node's Czxid for the token and returns the lease, or
// cleans up after err.
func (l *Lock) hold(ctx context.Context, own string, err error) (contend.Lease, error) {
	if err != nil {
		if own != "" {
			err = l.leave(own, err)
		}
		return nil, err
	}
	sess := l.Client().Session()
	st, err := zklab.Do(ctx, l.Client(), func() (*zk.Stat, error) {
		ok, st, err := l.Client().Conn().Exists(own)
		if err == nil && !ok {
			err = zk.ErrNoNode
		}
		return st, err
	})
	if err != nil {
		return nil, l.leave(own, fmt.Errorf("zknaive: %w", err))
	}
	return zklab.NewNodeLease(sess, own, uint64(st.Czxid)), nil
}

// leave deletes own node, in the background so that a ctx that ended does
// not hold the caller, and returns err. A delete that fails is left to the
// session's end.
func (l *Lock) leave(own string, err error) error {
	conn := l.Client().Conn()
	go func() { _ = conn.Delete(own, -1) }()
	return err
}
