// Package etcdlab is the lab's etcd tier: a lock and a semaphore whose
// state lives in an etcd cluster, with fencing tokens the cluster itself
// can check.
//
//	NewClient     one etcd client and one lease, kept alive in the background
//	NewLock       the queue recipe: the lowest create revision under a prefix holds
//	NewSemaphore  the same queue, admitting while the permits ahead plus one's own fit
//	Lease.FencedPut  a write the server applies only while the lease still holds
//
// NewLockAt and NewSemaphoreAt build each on a client of its own (the shape
// the harness's registry calls).
//
// # The recipe
//
// Every acquisition creates one key under the lock's prefix, attached to
// the client's etcd lease, in a transaction that creates it only if absent.
// The keys' create revisions order the queue: the key with the lowest holds
// the lock. A waiter waits only for the deletion of the key just ahead of
// it (the highest create revision below its own; no herd) and then reads
// the queue again before it believes it holds, since the key ahead may have
// been a waiter that left. The holder's create revision is its fencing
// token: revisions only grow, and a holder's key is created after every
// earlier holder's, so tokens strictly increase across holders.
//
// The deletions reach the waiters through one etcd watch of the prefix per
// lock and client, not one watch per waiter: see deletions for why. Every
// client with waiters therefore receives every release's event (one small
// message), and wakes only the waiter behind the deleted key. The waiter's
// read is serializable (any member answers from what it has applied): see
// readFrom for why a stale answer can delay a waiter but never admit it.
//
// A holder's key lives as long as the client's lease. The client refreshes
// the lease in the background every third of its TTL; if it cannot (the
// process stalls, the network drops, the cluster loses its quorum), etcd
// revokes the lease a TTL after the last refresh and deletes every key on
// it, and the next waiter holds. The old holder learns it at its next
// refresh, Release or Extend (ErrNotHeld), but may act in between: not safe
// without fencing (Jepsen found exactly that in etcd 3.4.3's own locks).
// Lease.FencedPut is the fence etcd makes possible: the write is a
// transaction conditional on the holder's key still existing with the
// holder's create revision, so a stale holder's write fails on the server.
//
// Lease.TTL is the holder's own view, and errs short: the lease's TTL from
// the instant before the last refresh that succeeded was sent (etcd counts
// from when it received it). When no refresh gets through for a whole TTL,
// the client gives the lease up: it stops refreshing it, revokes it if it
// can, and every hold on it reports ErrNotHeld, even though etcd might
// have kept it a little longer (it extends every lease when a new leader
// is elected). The next acquisition gets a new lease.
//
// # Faults and clean-up
//
// Each request is bounded by 500 ms (and by the caller's ctx); a waiter
// re-reads the queue at least once a second even when the watch is silent,
// because a watch stream to a member that was paused stalls without an
// error, and if it finds that the watch missed a deletion it replaces the
// watch. An acquisition whose context ends, or whose creating
// request's reply was lost, is abandoned: its key is deleted in the
// background, and in the lost-reply case a tombstone is written first (on
// the same lease), which the creating transaction checks, so that the
// request, should it still be applied later, creates nothing.
// Client.Settle waits for those clean-ups.
package etcdlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/etcdclient"
)

// ErrBadTTL is returned (wrapped) for a lease TTL below one second; see
// NewClient.
var ErrBadTTL = etcdclient.ErrBadTTL

// ErrClosed is returned (wrapped) by the operations of a closed Client and
// of the locks and semaphores on it.
var ErrClosed = errors.New("etcdlab: client is closed")

// errSessionLost: the lease an operation relied on is gone (expired or
// revoked); the operation may retry on a new one.
var errSessionLost = errors.New("etcdlab: the client's lease expired or was revoked")

// Timing of the requests, and of the waiters' fallback re-read.
const (
	// requestTimeout bounds each request; an operation retries after it
	// (or returns, once its ctx is done). It is far above a request's
	// latency on loopback, even under -race, and short because a request
	// can hang for good: one sent to a paused member, or to a member
	// without a leader, waits out the timeout before the retry goes to
	// another member.
	requestTimeout = 500 * time.Millisecond
	// recheckEvery is how long a waiter trusts a silent watch before it
	// reads the queue again.
	recheckEvery = time.Second
)

// Client is one etcd client and one etcd lease, which every lock and
// semaphore on it attaches its keys to, kept alive in the background. It
// counts the requests it sends (RoundTrips). Its methods are safe for
// concurrent use. The zero value refuses every operation with
// contend.ErrNotConstructed; make one with NewClient.
type Client struct {
	cli     *clientv3.Client
	cnt     *etcdclient.Counter
	ttlSec  int64
	recheck time.Duration // recheckEvery; tests that check wake-ups by watch turn it off

	grant chan struct{} // holds one token while a lease is being granted

	mu   sync.Mutex
	sess *session      // the lease new acquisitions attach to; nil or lost: grant a new one
	done chan struct{} // closed by Close

	closeOnce sync.Once
	closeErr  error
	loops     sync.WaitGroup // keep-alive loops
	cleanups  tracker        // abandoned acquisitions being cleaned up
}

// NewClient returns a Client of the etcd cluster at endpoints
// ("127.0.0.1:2379"), whose lease lasts ttl. etcd grants leases in whole
// seconds: a ttl below a second is an error wrapping ErrBadTTL, and a
// fraction above is rounded up (1.2 s becomes 2 s); the server may raise it
// further to its minimum (1.5 election timeouts). Lease.TTL reports what was
// granted. NewClient does not wait for the cluster: the lease is granted on
// the first acquisition. Close the Client when done.
func NewClient(endpoints []string, ttl time.Duration) (*Client, error) {
	return newClient(endpoints, ttl)
}

// newClient is NewClient with extra gRPC dial options (tests inject faults).
func newClient(endpoints []string, ttl time.Duration, extra ...grpc.DialOption) (*Client, error) {
	sec, err := etcdclient.LeaseSeconds(ttl)
	if err != nil {
		return nil, fmt.Errorf("etcdlab: NewClient: %w", err)
	}
	cli, cnt, err := etcdclient.New(endpoints, extra...)
	if err != nil {
		return nil, fmt.Errorf("etcdlab: NewClient: %w", err)
	}
	return &Client{cli: cli, cnt: cnt, ttlSec: sec, recheck: recheckEvery, grant: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

func (c *Client) check(op string) error {
	if c == nil || c.cli == nil {
		return fmt.Errorf("etcdlab: %s: %w", op, contend.ErrNotConstructed)
	}
	if c.closed() {
		return fmt.Errorf("etcdlab: %s: %w", op, ErrClosed)
	}
	return nil
}

func (c *Client) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// RoundTrips returns how many requests the client has sent (see
// etcdclient.Counter): 0 for the zero value.
func (c *Client) RoundTrips() int64 {
	if c == nil || c.cnt == nil {
		return 0
	}
	return c.cnt.RoundTrips()
}

// Close revokes the client's lease, which deletes every key on it (holders
// and waiters alike: their leases end, and Release returns ErrNotHeld), and
// closes the connection. It waits for the background work to stop, at most
// about a second for the revoke. Closing twice returns the first result.
func (c *Client) Close() error {
	if c == nil || c.cli == nil {
		return fmt.Errorf("etcdlab: Close: %w", contend.ErrNotConstructed)
	}
	c.closeOnce.Do(func() {
		c.mu.Lock()
		close(c.done)
		s := c.sess
		c.sess = nil
		c.mu.Unlock()
		if s != nil && !s.isLost() {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, _ = c.cli.Revoke(ctx, s.id) // if it fails, the lease expires after its TTL
			cancel()
			s.markLost(ErrClosed)
		}
		c.closeErr = c.cli.Close()
		c.loops.Wait()
		c.cleanups.wait(context.Background())
	})
	return c.closeErr
}

// Orphan stops refreshing the lease that the client's acquisitions so far
// are attached to, as concurrency.Session.Orphan does: etcd revokes it a TTL
// after its last refresh, which ends those holds and lets the next waiters
// in; until then they stand. Later acquisitions get a new lease. To the
// other clients, an orphaned client looks like one whose process stalled;
// the fault scenarios use it to make a holder outlive its lease.
func (c *Client) Orphan() {
	if c == nil || c.cli == nil {
		return
	}
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.orphanOnce.Do(func() { close(s.orphan) })
	}
}

// Settle waits until the clean-ups of abandoned acquisitions have finished
// (reached the server, or found the lease gone), or ctx is done. Tests call
// it before counting the keys under a prefix.
func (c *Client) Settle(ctx context.Context) error {
	if c == nil || c.cli == nil {
		return fmt.Errorf("etcdlab: Settle: %w", contend.ErrNotConstructed)
	}
	if err := c.cleanups.wait(ctx); err != nil {
		return fmt.Errorf("etcdlab: Settle: %w", err)
	}
	return nil
}

// session returns the lease that new acquisitions attach to, granting a new
// one if there is none or it was lost.
func (c *Client) session(ctx context.Context) (*session, error) {
	if s := c.current(); s != nil {
		return s, nil
	}
	select {
	case c.grant <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, ErrClosed
	}
	defer func() { <-c.grant }()
	if s := c.current(); s != nil { // granted while we waited for the token
		return s, nil
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := c.cli.Grant(cctx, c.ttlSec)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("lease grant: %w", err)
	}
	s := &session{c: c, id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second,
		lost: make(chan struct{}), orphan: make(chan struct{})}
	s.validUntil = start.Add(s.ttl)
	c.mu.Lock()
	if c.closed() {
		c.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		_, _ = c.cli.Revoke(rctx, s.id)
		cancel()
		return nil, ErrClosed
	}
	c.sess = s
	c.loops.Add(1)
	c.mu.Unlock()
	go s.keepAlive()
	return s, nil
}

func (c *Client) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil && !c.sess.isLost() {
		return c.sess
	}
	return nil
}

// session is one etcd lease of a Client and its keep-alive loop.
type session struct {
	c   *Client
	id  clientv3.LeaseID
	ttl time.Duration // as granted

	mu         sync.Mutex
	validUntil time.Time // ttl from the instant before the last successful grant or refresh was sent

	lost       chan struct{} // closed once the lease is known gone, or assumed gone
	lostOnce   sync.Once
	why        error         // why it was lost; written before lost is closed
	orphan     chan struct{} // closed by Client.Orphan
	orphanOnce sync.Once
}

func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

func (s *session) markLost(why error) {
	s.lostOnce.Do(func() {
		s.why = why
		close(s.lost)
	})
}

// remaining returns how long the lease has left as this process's clock
// sees it: etcd counts a lease's TTL from when it receives the grant or
// refresh, which is after the instant validUntil counts from. 0 once lost.
func (s *session) remaining() time.Duration {
	if s.isLost() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, time.Until(s.validUntil))
}

func (s *session) refreshed(start time.Time, ttlSec int64) {
	s.mu.Lock()
	if v := start.Add(time.Duration(ttlSec) * time.Second); v.After(s.validUntil) {
		s.validUntil = v
	}
	s.mu.Unlock()
}

// keepAlive refreshes the lease every third of its TTL, and retries a
// failed refresh every tenth, until the lease is found gone, its validity
// runs out without a refresh (then it counts as lost, and is revoked), the
// client closes, or it is orphaned (then it waits out the validity and
// counts as lost, and is left to expire).
func (s *session) keepAlive() {
	defer s.c.loops.Done()
	t := time.NewTimer(s.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-s.c.done:
			s.markLost(ErrClosed)
			return
		case <-s.orphan:
			select {
			case <-time.After(s.remaining()):
				s.markLost(errSessionLost)
			case <-s.c.done:
				s.markLost(ErrClosed)
			}
			return
		case <-t.C:
		}
		left := s.remaining()
		if left <= 0 {
			// No refresh got through within the TTL: etcd may have revoked
			// the lease, or (after a leader change, which extends leases)
			// may keep it a while longer. Either way it is no longer
			// trusted here; revoke it, so that its keys do not hold up the
			// others until etcd expires it.
			s.markLost(errSessionLost)
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, _ = s.c.cli.Revoke(ctx, s.id)
			cancel()
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), min(requestTimeout, left))
		resp, err := s.c.cli.KeepAliveOnce(ctx, s.id)
		cancel()
		switch {
		case err == nil:
			s.refreshed(start, resp.TTL)
			t.Reset(s.ttl / 3)
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			s.markLost(errSessionLost)
			return
		default:
			t.Reset(s.ttl / 10)
		}
	}
}

// leaseGone reports whether err says the lease a request named does not
// exist (expired or revoked): a definitive answer, nothing was written.
func leaseGone(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound)
}

// tracker counts work in flight and lets callers wait until there is none.
// Unlike a WaitGroup it may be waited on while work is being added.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0; nil means closed
}

func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff is capped exponential backoff with full jitter in [d/2, d]: from
// its first d up to 200 ms.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	d := b.d
	b.d = min(2*b.d, 200*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

// sleep waits for the next backoff, ctx, or the client's Close; it returns
// ctx.Err() or ErrClosed in those cases.
func (c *Client) sleep(ctx context.Context, b *backoff) error {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
}

// failure wraps the error an operation ends with: ctx.Err() once ctx is
// done (with the last error from etcd, if any), ErrClosed once the client
// is.
func failure(op string, ctx context.Context, c *Client, last error) error {
	switch {
	case ctx.Err() != nil && last != nil && !errors.Is(last, ctx.Err()):
		return fmt.Errorf("etcdlab: %s: %w (last error: %w)", op, ctx.Err(), last)
	case ctx.Err() != nil:
		return fmt.Errorf("etcdlab: %s: %w", op, ctx.Err())
	case c.closed():
		return fmt.Errorf("etcdlab: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("etcdlab: %s: %w", op, last)
}
