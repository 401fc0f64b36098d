package zklab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/contend-lab/contend"
)

// lease is a holding of a Lock or a Semaphore: the holder's ephemeral node,
// which lives as long as the session that created it, or until Release
// deletes it.
type lease struct {
	c     *Client
	what  string // "Lock" or "Semaphore", for messages
	path  string
	sess  Session
	token uint64

	mu       sync.Mutex // serialises Release and Extend
	released atomic.Bool
}

var _ contend.Lease = (*lease)(nil)

// NewNodeLease returns the lease of the ephemeral znode at path, created in
// sess, with the fencing token token, as a Lock's leases are: Release
// deletes the node, Extend checks that it exists, TTL is sess.Left. For
// designs built on a Client by other packages (zknaive).
func NewNodeLease(sess Session, path string, token uint64) contend.Lease {
	return &lease{c: sess.c, what: "node", path: path, sess: sess, token: token}
}

func (l *lease) Token() uint64 { return l.token }

// gone reports whether the lease is known to be over.
func (l *lease) gone() bool { return l.released.Load() || !l.sess.Alive() }

// Release deletes the lease's node. It returns ErrNotHeld (wrapped),
// without a round trip, if the lease was released already or its session
// is known to have ended, and after one if the node is gone (the session
// expired before the client learned it). Any other error (the server did
// not answer within ctx) leaves the lease as it was, and Release may be
// called again; a retry whose first attempt did delete the node reports
// ErrNotHeld.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone() {
		l.released.Store(true)
		return fmt.Errorf("zklab: %s lease Release: %w", l.what, contend.ErrNotHeld)
	}
	err := l.c.call(ctx, func() error { return l.c.conn.Delete(l.path, -1) })
	switch {
	case err == nil:
		l.released.Store(true)
		return nil
	case errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrSessionExpired), errors.Is(err, ErrClosed):
		l.released.Store(true)
		return fmt.Errorf("zklab: %s lease Release: %w (%v)", l.what, contend.ErrNotHeld, err)
	}
	return fmt.Errorf("zklab: %s lease Release: %w", l.what, err)
}

// Extend cannot move a ZooKeeper lease's expiry: the lease lasts as long as
// its session, which go-zookeeper's pings keep alive while the client
// reaches a server, and which expires once the servers have heard nothing
// from it for its timeout. Extend checks in one round trip that the node
// is still there, which also proves the session alive and so restarts TTL
// at the session timeout (less its margin). ttl must be positive and no
// longer than the session timeout: longer cannot be promised by a
// session that could lose contact now. It returns ErrNotHeld (wrapped) if
// the lease is over.
func (l *lease) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 || ttl > l.c.SessionTimeout() {
		return fmt.Errorf("zklab: %s lease Extend(%v): %w (want (0, session timeout %v])", l.what, ttl, ErrBadTTL, l.c.SessionTimeout())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone() {
		return fmt.Errorf("zklab: %s lease Extend: %w", l.what, contend.ErrNotHeld)
	}
	ok, _, err := l.c.exists(ctx, l.path)
	switch {
	case err != nil:
		return fmt.Errorf("zklab: %s lease Extend: %w", l.what, err)
	case !ok || !l.sess.Alive():
		return fmt.Errorf("zklab: %s lease Extend: %w", l.what, contend.ErrNotHeld)
	}
	return nil
}

// TTL returns how long the lease is sure to last even if the client loses
// contact with the servers now (Session.Left), and 0 once it is over.
func (l *lease) TTL() (time.Duration, bool) {
	if l.released.Load() {
		return 0, true
	}
	return l.sess.Left(), true
}
