package zklab

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/contend-lab/contend"
)

// Handle is what every lock and semaphore on a Client has, here and in the
// sibling packages (zknaive, zkref): the client, the znode its queue lives
// under, and whether Close closes the client (it does when the constructor
// dialled it: DialAt). Embed it. Its zero value refuses with
// contend.ErrNotConstructed.
type Handle struct {
	c     *Client
	path  string
	owned bool
}

// NewHandle returns the handle of a lock or semaphore on c at path; its
// Close leaves c open.
func NewHandle(c *Client, path string) Handle { return Handle{c: c, path: path} }

// DialAt dials a client of its own for the registry's key: Dial(endpoints,
// ttl) (ttl is the session timeout) at PathFor(key). The handle's Close
// closes the client.
func DialAt(endpoints []string, key string, ttl time.Duration) (Handle, error) {
	path, err := PathFor(key)
	if err != nil {
		return Handle{}, err
	}
	c, err := Dial(endpoints, ttl)
	if err != nil {
		return Handle{}, err
	}
	return Handle{c: c, path: path, owned: true}, nil
}

// OpenHandle returns the handle of a lock on c at path, creating path (and
// its ancestors) if missing, within the client's setup timeout. It is for
// the sibling packages, whose queues need no mark on their path.
func OpenHandle(c *Client, path string) (Handle, error) {
	if c == nil || c.conn == nil {
		return Handle{}, fmt.Errorf("zklab: OpenHandle: nil client: %w", contend.ErrNotConstructed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.setup)
	defer cancel()
	if err := c.CreatePath(ctx, path); err != nil {
		return Handle{}, err
	}
	return NewHandle(c, path), nil
}

// OpenHandleAt is OpenHandle on a client of its own (DialAt), which is
// closed again if the path cannot be made.
func OpenHandleAt(endpoints []string, key string, ttl time.Duration) (Handle, error) {
	h, err := DialAt(endpoints, key, ttl)
	if err != nil {
		return Handle{}, err
	}
	if _, err := OpenHandle(h.c, h.path); err != nil {
		_ = h.Close()
		return Handle{}, err
	}
	return h, nil
}

// Client returns the client the lock or semaphore runs on.
func (h *Handle) Client() *Client { return h.c }

// Path returns the znode under which its queue lives.
func (h *Handle) Path() string { return h.path }

// RoundTrips returns the requests its client has sent (Client.RoundTrips:
// those of everything else on the same client too). It implements
// remote.RoundTripCounter.
func (h *Handle) RoundTrips() int64 { return h.c.RoundTrips() }

// Settle waits for the client's background clean-ups (Client.Settle): the
// nodes of Acquires that gave up. Until then such a node can stand first in
// the queue with nobody to hold, and TryAcquire reports ErrHeld.
func (h *Handle) Settle(ctx context.Context) error { return h.c.Settle(ctx) }

// Close closes the client if the constructor dialled it, ending its session
// and every lease of it; otherwise it does nothing.
func (h *Handle) Close() error {
	if h.c == nil {
		return fmt.Errorf("zklab: Close: %w", contend.ErrNotConstructed)
	}
	if h.owned {
		return h.c.Close()
	}
	return nil
}

// Check returns the error that op (a method name, for the message) must
// return before it sends anything: the handle is a zero value, its client
// is closed, or ctx is done already.
func (h *Handle) Check(ctx context.Context, op string) error {
	switch {
	case h.c == nil || h.c.conn == nil:
		return fmt.Errorf("%s: %w", op, contend.ErrNotConstructed)
	case h.c.closed.Load():
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
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
