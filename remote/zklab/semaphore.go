package zklab

import (
	"context"
	"math"
	"strconv"
	"time"

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
// waiter watches only the node before it, and a contender that comes to
// hold with a node behind it marks its own node (one write, sent after the
// grant) so that the next one looks again; with capacity 1 it is the Lock.
// Not guaranteed, as for Lock: exclusion past a session's expiry, and the
// exact TryAcquire while an Acquire whose ctx has ended leaves the queue.
type Semaphore struct {
	Handle
	capacity int64
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
	return newSemaphore(NewHandle(c, path), capacity)
}

// NewSemaphoreAt dials its own client on endpoints with a session timeout
// of ttl, and returns the Semaphore on PathFor(key) on it. Close closes the
// client. This is the registry's constructor.
func NewSemaphoreAt(endpoints []string, key string, capacity int64, ttl time.Duration) (*Semaphore, error) {
	if err := contend.CheckSemaphoreCapacity(capacity, MaxCapacity); err != nil {
		return nil, err
	}
	h, err := DialAt(endpoints, key, ttl)
	if err != nil {
		return nil, err
	}
	s, err := newSemaphore(h, capacity)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return s, nil
}

func newSemaphore(h Handle, capacity int64) (*Semaphore, error) {
	mark := semMark + strconv.FormatInt(capacity, 10)
	if err := h.c.setupParent("NewSemaphore", h.path, mark, func(data []byte) bool {
		return string(data) == mark
	}); err != nil {
		return nil, err
	}
	return &Semaphore{Handle: h, capacity: capacity}, nil
}

// Capacity returns the number of permits.
func (s *Semaphore) Capacity() int64 { return s.capacity }

func (s *Semaphore) ready(ctx context.Context, op string, n int64) error {
	if err := s.Check(context.Background(), "zklab: Semaphore."+op); err != nil {
		return err
	}
	if n < 1 || n > s.capacity {
		return &contend.PermitError{N: n, Capacity: s.capacity}
	}
	return s.Check(ctx, "zklab: Semaphore."+op)
}

// Acquire joins the queue asking for n permits and waits until they fit,
// or returns ctx.Err() (wrapped) once ctx is done, as Lock.Acquire does.
// n outside [1, Capacity] is a *contend.PermitError, at once.
func (s *Semaphore) Acquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.ready(ctx, "Acquire", n); err != nil {
		return nil, err
	}
	return s.queue().acquire(ctx, n, false)
}

// TryAcquire joins the queue and looks once: if its n permits fit it
// holds; otherwise it leaves and returns ErrHeld (wrapped), deleting its
// node in one transaction with a check that enough of the nodes before it
// still exist that it never fitted (as Lock.TryAcquire does).
func (s *Semaphore) TryAcquire(ctx context.Context, n int64) (contend.Lease, error) {
	if err := s.ready(ctx, "TryAcquire", n); err != nil {
		return nil, err
	}
	return s.queue().acquire(ctx, n, true)
}

func (s *Semaphore) queue() queue {
	return queue{Handle: &s.Handle, kind: semKind, capacity: s.capacity, what: "Semaphore"}
}
