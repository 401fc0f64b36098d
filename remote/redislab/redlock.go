package redislab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
	"github.com/redis/go-redis/v9"
)

// ErrNoQuorum is returned (wrapped) by Redlock when too few servers could
// be reached to form a quorum, as opposed to ErrHeld (reachable servers
// said someone else holds the lock).
var ErrNoQuorum = errors.New("redislab: Redlock: too few servers reachable for a quorum")

// Redlock is the Redlock algorithm over N independent Redis servers (no
// replication between them): an acquisition runs Lock's acquire script on
// every server at once, each bounded by a short per-node timeout, and
// succeeds if a quorum of N/2+1 servers granted it and validity remains:
//
//	validity = ttl − elapsed − drift,  drift = ttl×1% + 2 ms
//
// where elapsed runs from before the first request to the last reply.
// Otherwise it releases (abandons, with a tombstone) the key on every
// server, so that a partial grant is undone, and reports ErrHeld or
// ErrNoQuorum.
//
// Guarantees:
//   - Liveness with a minority of servers down or stalled: each node's
//     answer is awaited at most the per-node timeout.
//   - At most one holder at a time, in Redlock's model: servers that do not
//     lose data (a server restarted without persistence forgets its grants,
//     so restart it only after ttl, as the Redlock paper asks) and bounded
//     clock drift, bounded pauses and bounded network delay — the holder
//     must finish before Lease.TTL runs out and must not stall meanwhile.
//
// Not guaranteed, and why it matters (Kleppmann, "How to do distributed
// locking"): a process pause, a network delay or a clock jump on a server
// longer than the margin lets two clients hold the lock at once, and
// Redlock has no fencing token that can save the resource then. Lease.Token
// here is the maximum of the per-node fencing counters over the nodes that
// granted: it increases strictly from one grant to the next as long as some
// node of every quorum has seen every earlier grant (any two quorums of the
// same N overlap in one node, and that node's counter only increases), so
// it does order successive grants of an intact set of servers. It does not
// order two grants that overlap because of the failures above, and it does
// not survive a node that restarts without its data and joins a quorum with
// nodes that missed earlier grants: that is precisely the unsafe case. Use
// it as a hint, not as a safety mechanism; for safe fencing use Lock (one
// server, no failover) or a consensus system.
//
// Fairness: waiters poll with backoff, as Lock's do; none is guaranteed.
type Redlock struct {
	roundTrips
	cleaner
	nodes       []lockNode
	ttl         time.Duration
	nodeTimeout time.Duration
	quorum      int
}

// RedlockOption configures NewRedlock.
type RedlockOption func(*Redlock)

// WithNodeTimeout sets how long an acquisition waits for each server's
// answer. The default is ttl/20, clamped to [5 ms, 50 ms]: short compared
// with ttl, so that a dead server costs little validity.
func WithNodeTimeout(d time.Duration) RedlockOption {
	return func(r *Redlock) { r.nodeTimeout = d }
}

// NewRedlock returns a Redlock on key over clients, one per independent
// server; at least 1 (3 or 5 in practice; an even N tolerates no more
// failures than N−1). ttl must be at least 1 ms. Every client must have
// ContextTimeoutEnabled (see NewClient) and gets a round-trip counting hook.
func NewRedlock(clients []*redis.Client, key string, ttl time.Duration, opts ...RedlockOption) (*Redlock, error) {
	if len(clients) == 0 {
		return nil, errors.New("redislab: NewRedlock: no servers")
	}
	if err := checkTTL("NewRedlock", ttl); err != nil {
		return nil, err
	}
	r := &Redlock{ttl: ttl, quorum: len(clients)/2 + 1}
	r.nodeTimeout = min(max(ttl/20, 5*time.Millisecond), 50*time.Millisecond)
	for _, o := range opts {
		o(r)
	}
	for i, c := range clients {
		if err := checkClient(fmt.Sprintf("NewRedlock (server %d)", i), c); err != nil {
			return nil, err
		}
		redisx.Instrument(c)
		r.nodes = append(r.nodes, newLockNode(c, key, ttl))
	}
	r.window = retention(ttl)
	return r, nil
}

// Quorum returns N/2+1, the number of servers that must grant.
func (r *Redlock) Quorum() int { return r.quorum }

// Acquire retries attempts (see TryAcquire) with backoff with jitter (1 ms
// doubling to 32 ms) until one succeeds or ctx is done; it then returns
// ctx.Err() wrapped together with the last attempt's error (ErrHeld or
// ErrNoQuorum). Each attempt uses a new holder id; a failed attempt is
// undone on every server first.
func (r *Redlock) Acquire(ctx context.Context) (contend.Lease, error) {
	b := redisx.Backoff{D: time.Millisecond, Max: 32 * time.Millisecond}
	var last error
	for ctx.Err() == nil {
		l, err := r.TryAcquire(ctx)
		if err == nil {
			return l, nil
		}
		last = err
		if redisx.SleepCtx(ctx, b.Next()) != nil {
			break
		}
	}
	return nil, redisx.CtxErr("redislab: Redlock.Acquire", ctx, last)
}

// TryAcquire makes one Redlock attempt: the lease if a quorum granted it
// with validity left; otherwise contend.ErrHeld (wrapped) when enough
// servers answered but too few granted, or ErrNoQuorum (wrapped, with each
// server's error) when too few answered. A failed attempt is undone on
// every server before TryAcquire returns (bounded by the per-node timeout);
// a server that could not be reached then is cleaned up in the background
// (see Settle).
func (r *Redlock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	ctx = r.with(ctx)
	id := newID()
	start := time.Now()
	tokens := make([]uint64, len(r.nodes))
	errs := make([]error, len(r.nodes))
	r.each(func(i int, n lockNode) {
		nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
		defer cancel()
		tokens[i], errs[i] = n.acquire(nctx, id)
	})
	elapsed := time.Since(start)
	granted, answered := 0, 0
	var maxTok uint64
	for i := range r.nodes {
		if errs[i] == nil {
			answered++
			if tokens[i] > 0 {
				granted++
				maxTok = max(maxTok, tokens[i])
			}
		}
	}
	if granted >= r.quorum && r.ttl-elapsed-redisx.DriftFor(r.ttl) > 0 {
		uncertain := make([]bool, len(r.nodes))
		for i, err := range errs {
			uncertain[i] = err != nil && !redisx.Definitive(err)
		}
		s := &redlockLease{r: r, id: id, token: maxTok, tokens: tokens, uncertain: uncertain}
		s.v.Set(start, r.ttl)
		return s, nil
	}
	r.undo(ctx, id)
	switch {
	case answered < r.quorum:
		return nil, fmt.Errorf("redislab: Redlock.TryAcquire: %w (%d of %d answered, quorum %d): %w",
			ErrNoQuorum, answered, len(r.nodes), r.quorum, errors.Join(errs...))
	case ctx.Err() != nil:
		return nil, redisx.CtxErr("redislab: Redlock.TryAcquire", ctx, errors.Join(errs...))
	case granted >= r.quorum:
		return nil, fmt.Errorf("redislab: Redlock.TryAcquire: %w (quorum granted, but the %v it took left no validity)", contend.ErrHeld, elapsed)
	}
	return nil, fmt.Errorf("redislab: Redlock.TryAcquire: %w (%d of %d granted, quorum %d)", contend.ErrHeld, granted, len(r.nodes), r.quorum)
}

// undo abandons id on every server, in parallel; servers that do not answer
// within the per-node timeout are retried in the background.
func (r *Redlock) undo(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	r.each(func(_ int, n lockNode) {
		nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
		err := n.abandon(nctx, id)
		cancel()
		if err != nil {
			r.abandon(func(ctx context.Context) error { return n.abandon(r.with(ctx), id) })
		}
	})
}

// each runs fn on every node at once and waits for all.
func (r *Redlock) each(fn func(i int, n lockNode)) {
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Go(func() { fn(i, n) })
	}
	wg.Wait()
}

// redlockLease is a lease of a Redlock. The value on each node is
// "<id>:<that node's token>".
type redlockLease struct {
	r         *Redlock
	id        string
	token     uint64
	tokens    []uint64 // per node, 0 where it did not grant
	uncertain []bool   // per node: the acquire's outcome is unknown
	v         redisx.Validity
	done      redisx.DoneFlag
}

func (s *redlockLease) Token() uint64 { return s.token }

// nodeValue is the value this lease stored on node i, if it granted; ""
// otherwise.
func (s *redlockLease) nodeValue(i int) string {
	if s.tokens[i] == 0 {
		return ""
	}
	return lockValue(s.id, s.tokens[i])
}

// Release deletes the key on every server that still holds this lease's
// value (in parallel, each bounded by the per-node timeout). It returns nil
// if the lease was still valid by TTL and a quorum released; an error
// wrapping context.DeadlineExceeded, leaving the lease releasable again, if
// servers that did not answer could make up the quorum; ErrNotHeld
// (wrapped) otherwise — the keys that were ours are deleted either way, and
// servers that granted but could not be reached are cleaned up in the
// background.
func (s *redlockLease) Release(ctx context.Context) error {
	r := s.r
	ctx = r.with(ctx)
	return s.done.Release("redislab: Redlock lease Release", func() (bool, error) {
		valid := s.v.Remaining() > 0
		var mu sync.Mutex
		released, unreached := 0, 0
		r.each(func(i int, n lockNode) {
			nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
			defer cancel()
			var ok bool
			var err error
			if v := s.nodeValue(i); v != "" {
				ok, err = n.release(nctx, v)
				if err != nil {
					mu.Lock()
					unreached++
					mu.Unlock()
				}
			} else if s.uncertain[i] {
				// The acquire timed out here: a late grant may still land.
				err = n.abandon(nctx, s.id)
			}
			if err != nil {
				r.abandon(func(ctx context.Context) error { return n.abandon(r.with(ctx), s.id) })
			}
			if ok {
				mu.Lock()
				released++
				mu.Unlock()
			}
		})
		if valid && released < r.quorum && released+unreached >= r.quorum {
			// Not "not held": the servers that did not answer may still
			// hold it. Say so, and leave the lease releasable again.
			return false, fmt.Errorf("release confirmed by %d servers, %d did not answer within %v (quorum %d): %w",
				released, unreached, r.nodeTimeout, r.quorum, context.DeadlineExceeded)
		}
		return valid && released >= r.quorum, nil
	})
}

// Extend moves the expiry to ttl from now on every server that still holds
// this lease's value, and succeeds if a quorum did so with validity left
// (ttl − elapsed − drift > 0); the local validity then restarts from the
// instant before the requests. Otherwise ErrNotHeld (wrapped).
func (s *redlockLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("Redlock lease Extend", ttl); err != nil {
		return err
	}
	if s.done.Released() || s.v.Remaining() == 0 {
		return fmt.Errorf("redislab: Redlock lease Extend: %w", contend.ErrNotHeld)
	}
	r := s.r
	ctx = r.with(ctx)
	start := time.Now()
	var mu sync.Mutex
	extended := 0
	r.each(func(i int, n lockNode) {
		v := s.nodeValue(i)
		if v == "" {
			return
		}
		nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
		defer cancel()
		if ok, err := n.extend(nctx, v, ttl); err == nil && ok {
			mu.Lock()
			extended++
			mu.Unlock()
		}
	})
	if extended < r.quorum || ttl-time.Since(start)-redisx.DriftFor(ttl) <= 0 {
		return fmt.Errorf("redislab: Redlock lease Extend: %w (%d servers extended, quorum %d)", contend.ErrNotHeld, extended, r.quorum)
	}
	s.v.Set(start, ttl)
	return nil
}

// TTL returns the remaining validity by the local monotonic clock: ttl from
// the instant before the first acquire request, less elapsed time, less the
// drift allowance ttl×1% + 2 ms.
func (s *redlockLease) TTL() (time.Duration, bool) { return s.v.Remaining(), true }
