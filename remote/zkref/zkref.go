// Package zkref adapts go-zookeeper's own lock (zk.Lock, in
// github.com/go-zookeeper/zk v1.0.4) to contend.Lock, as the reference the
// lab's ZooKeeper lock is measured against. zk.Lock is the same recipe as
// zklab.Lock (ephemeral sequential nodes, the lowest holds, each waiter
// watches its predecessor and lists the queue again when it goes), with
// Curator's protection against lost create replies, but its API has no
// context, no try-lock and no fencing token, and each zk.Lock value holds at
// most once at a time. What the adapter does about each, and what it
// costs:
//
//   - No context. zk.Lock.Lock waits until it holds or the session fails.
//     Acquire runs it on a goroutine and returns ctx.Err() when ctx ends
//     first, but the call keeps going: its node stays in the queue, takes
//     its turn, and is released by the adapter the moment it holds. Each
//     abandoned Acquire thus costs a goroutine and a turn at the lock (a
//     few round trips during which nobody holds it and TryAcquire reports
//     ErrHeld: the hand-off deviation, for as long as the turn takes to
//     come). Settle waits for these to finish.
//   - No try-lock. TryAcquire lists the queue once: ErrHeld if anyone is in
//     it, otherwise it acquires as Acquire does. A contender that joins the
//     queue between the look and the create gets ahead of it, and
//     TryAcquire then waits for it (bounded by ctx): a stated deviation
//     from the contract, which says TryAcquire never waits.
//   - No fencing token: Token is always 0, as for the Redis references.
//   - An error inside zk.Lock.Lock after its create (a lost connection
//     while it lists or waits) abandons its node, which stays in the queue
//     until the session ends: the lock is blocked for everyone meanwhile.
//     A session that expires while it waits makes Lock return an error
//     (the adapter's Acquire returns it) instead of queueing again.
//
// Leases end with the session as zklab's do (TTL is zklab.Session.Left;
// Release and Extend say ErrNotHeld once the client knows the session
// ended).
package zkref

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/remote/zklab"
)

// Lock is go-zookeeper's zk.Lock behind contend.Lock; see the package doc
// for the deviations. Its methods are safe for concurrent use (a zk.Lock
// per acquisition); the zero value refuses with contend.ErrNotConstructed.
type Lock struct {
	zklab.Handle

	mu     sync.Mutex     // orders background against Close
	closed bool           // Close closed the client
	bg     sync.WaitGroup // abandoned acquisitions, releasing once they hold
}

// background runs fn on a goroutine counted by bg, unless Close closed the
// client (the session's end then frees what fn would).
func (l *Lock) background(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.bg.Go(fn)
	}
}

var _ contend.Lock = (*Lock)(nil)

// NewLock returns the lock whose queue is under the znode path (created if
// missing), on client c.
func NewLock(c *zklab.Client, path string) (*Lock, error) {
	h, err := zklab.OpenHandle(c, path)
	if err != nil {
		return nil, fmt.Errorf("zkref: NewLock: %w", err)
	}
	return &Lock{Handle: h}, nil
}

// NewLockAt dials its own client on endpoints with a session timeout of
// ttl and returns the lock on zklab.PathFor(key); Close closes the
// client. This is the registry's constructor.
func NewLockAt(endpoints []string, key string, ttl time.Duration) (*Lock, error) {
	h, err := zklab.OpenHandleAt(endpoints, key, ttl)
	if err != nil {
		return nil, fmt.Errorf("zkref: NewLockAt: %w", err)
	}
	return &Lock{Handle: h}, nil
}

// Settle waits until every abandoned acquisition has taken its turn and
// released, or ctx is done.
func (l *Lock) Settle(ctx context.Context) error {
	done := make(chan struct{})
	go func() { l.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkref: Settle: %w", ctx.Err())
	}
}

// Close closes the client if the lock dialled it (NewLockAt), which ends
// the abandoned acquisitions too, and waits for them, for closePatience at
// most (an error then says they are still blocked).
func (l *Lock) Close() error {
	if err := l.Handle.Close(); err != nil || !l.Client().Closed() {
		return err // a zero value, or a client the lock does not own
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	// Closing the connection ends them, unless go-zookeeper's connection
	// loop is itself stuck (seen: blocked in flushRequests on a reply
	// channel that is full), which it never leaves: then give up on them.
	ctx, cancel := context.WithTimeout(context.Background(), closePatience)
	defer cancel()
	return l.Settle(ctx)
}

// closePatience bounds Close's wait for the abandoned acquisitions.
const closePatience = 10 * time.Second

// Acquire runs zk.Lock.Lock, or returns ctx.Err() (wrapped) once ctx is
// done, leaving the call to finish and release in the background.
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if err := l.Check(ctx, "zkref: Acquire"); err != nil {
		return nil, err
	}
	return l.acquire(ctx, "Acquire")
}

func (l *Lock) acquire(ctx context.Context, op string) (contend.Lease, error) {
	for {
		zl := zk.NewLock(l.Client().Conn(), l.Path(), zk.WorldACL(zk.PermAll))
		sess := l.Client().Session()
		locked := make(chan error, 1)
		go func() { locked <- zl.Lock() }()
		select {
		case err := <-locked:
			if err != nil {
				return nil, fmt.Errorf("zkref: %s: %w", op, err)
			}
			if err := ctx.Err(); err != nil {
				// ctx may have ended before the lock was ours: give it back.
				l.background(func() { _ = zl.Unlock() })
				return nil, fmt.Errorf("zkref: %s: %w", op, err)
			}
			if !sess.Alive() {
				// The session ended while zk.Lock waited, and the client
				// made a new one: the node it holds may belong to either,
				// and a lease on the old session would report itself lost
				// while its node lived on. Give it back and queue again.
				l.background(func() { _ = zl.Unlock() })
				continue
			}
			return &lease{c: l.Client(), zl: zl, sess: sess}, nil
		case <-ctx.Done():
			l.background(func() {
				if <-locked == nil {
					_ = zl.Unlock()
				}
			})
			return nil, fmt.Errorf("zkref: %s: %w", op, ctx.Err())
		}
	}
}

// TryAcquire returns ErrHeld (wrapped) if the queue has anyone in it, and
// otherwise acquires as Acquire does, which can wait (see the package
// doc).
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if err := l.Check(ctx, "zkref: TryAcquire"); err != nil {
		return nil, err
	}
	conn := l.Client().Conn()
	kids, err := zklab.Do(ctx, l.Client(), func() ([]string, error) {
		kids, _, err := conn.Children(l.Path())
		return kids, err
	})
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("zkref: TryAcquire: %w", err)
	}
	if len(kids) > 0 {
		return nil, fmt.Errorf("zkref: TryAcquire: %w", contend.ErrHeld)
	}
	return l.acquire(ctx, "TryAcquire")
}

// lease is a holding of a zk.Lock.
type lease struct {
	c    *zklab.Client
	zl   *zk.Lock
	sess zklab.Session

	mu       sync.Mutex
	unlock   chan struct{} // closed when the Unlock started by Release returns
	result   error         // Unlock's result, valid once unlock is closed
	reported bool          // a Release has returned the result
}

// Token is always 0: zk.Lock exposes no fencing token.
func (s *lease) Token() uint64 { return 0 }

// Release runs zk.Lock.Unlock (one delete). If ctx ends first, the delete
// goes on, and a later Release reports its outcome. ErrNotHeld (wrapped)
// once released, or when the node went with its session.
func (s *lease) Release(ctx context.Context) error {
	s.mu.Lock()
	if s.reported {
		s.mu.Unlock()
		return fmt.Errorf("zkref: Release: %w", contend.ErrNotHeld)
	}
	if s.unlock == nil {
		if !s.sess.Alive() {
			s.reported = true
			s.mu.Unlock()
			return fmt.Errorf("zkref: Release: %w (the session ended)", contend.ErrNotHeld)
		}
		s.unlock = make(chan struct{})
		go func() {
			err := s.zl.Unlock()
			s.mu.Lock()
			s.result = err
			s.mu.Unlock()
			close(s.unlock)
		}()
	}
	unlock := s.unlock
	s.mu.Unlock()
	select {
	case <-unlock:
	case <-ctx.Done():
		return fmt.Errorf("zkref: Release: %w", ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reported {
		return fmt.Errorf("zkref: Release: %w", contend.ErrNotHeld)
	}
	s.reported = true
	switch err := s.result; {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNotLocked), errors.Is(err, zk.ErrSessionExpired):
		return fmt.Errorf("zkref: Release: %w (%v)", contend.ErrNotHeld, err)
	default:
		return fmt.Errorf("zkref: Release: %w", err)
	}
}

// Extend checks, in one round trip, that the session is alive (zk.Lock
// does not say which node is its own); ttl must be positive and at most
// the session timeout. See zklab's lease for what extending a session
// lease means.
func (s *lease) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 || ttl > s.c.SessionTimeout() {
		return fmt.Errorf("zkref: Extend(%v): %w", ttl, zklab.ErrBadTTL)
	}
	s.mu.Lock()
	over := s.unlock != nil || !s.sess.Alive()
	s.mu.Unlock()
	if over {
		return fmt.Errorf("zkref: Extend: %w", contend.ErrNotHeld)
	}
	conn := s.c.Conn()
	if _, err := zklab.Do(ctx, s.c, func() (bool, error) {
		ok, _, err := conn.Exists("/")
		return ok, err
	}); err != nil {
		return fmt.Errorf("zkref: Extend: %w", err)
	}
	if !s.sess.Alive() {
		return fmt.Errorf("zkref: Extend: %w", contend.ErrNotHeld)
	}
	return nil
}

// TTL is the session's time left (zklab.Session.Left), 0 once released.
func (s *lease) TTL() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unlock != nil {
		return 0, true
	}
	return s.sess.Left(), true
}
