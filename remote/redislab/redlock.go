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
// be reached, or too few accept the request at all, to form a quorum; as
// opposed to ErrHeld (reachable servers said someone else holds the lock).
var ErrNoQuorum = errors.New("too few servers to form a quorum")

// Redlock is the Redlock algorithm over N independent Redis servers (no
// replication between them): an attempt runs Lock's acquire script on every
// server at once, each bounded by a short per-node timeout, and succeeds if
// a quorum of N/2+1 granted it with validity left,
//
//	validity = ttl − elapsed − drift,  drift = ttl×1% + 2 ms,
//
// elapsed running from before the first request to the last reply;
// otherwise it undoes the attempt on every server. An attempt costs N
// round trips in parallel, and a failed one N more. A server that refuses
// for good (WRONGPASS, WRONGTYPE...) counts as one that never grants.
//
// At most one holder in Redlock's model: servers that keep their data (a
// restarted one must stay down for a ttl), bounded clock drift, pauses and
// network delays. A pause, delay or clock jump past the margin lets two
// clients hold it at once (Kleppmann, "How to do distributed locking"), and
// Lease.Token (the maximum of the granting servers' counters) cannot fence
// that case off: use it as a hint; for fencing, use Lock or a consensus
// system. Waiters back off and retry, with no order between them (see the
// package doc on fairness). The zero value refuses every call
// (contend.ErrNotConstructed): use NewRedlock.
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
// failures than N−1). Each is a *redis.Client: a Redlock server is one
// server, not a cluster. ttl must be at least 1 ms. Every client must have
// ContextTimeoutEnabled (see NewClient).
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
		if o != nil {
			o(r)
		}
	}
	if r.nodeTimeout <= 0 {
		return nil, fmt.Errorf("redislab: NewRedlock: node timeout %v: must be positive", r.nodeTimeout)
	}
	for i, c := range clients {
		if _, err := checkClient(fmt.Sprintf("NewRedlock (server %d)", i), "Redlock", c, key); err != nil {
			return nil, err
		}
		r.nodes = append(r.nodes, newLockNode(c, key, ttl))
	}
	r.window = retention(ttl)
	return r, nil
}

// Quorum returns N/2+1, the number of servers that must grant.
func (r *Redlock) Quorum() int { return r.quorum }

// Acquire makes attempts (see TryAcquire), with backoff with jitter (1 ms
// doubling to 32 ms) between them, until one succeeds, too few servers
// accept requests at all (returned at once), or ctx is done: then it
// returns ctx.Err() wrapped with what the last attempt ran into (ErrHeld,
// or ErrNoQuorum with the servers' errors).
func (r *Redlock) Acquire(ctx context.Context) (contend.Lease, error) {
	if len(r.nodes) == 0 {
		return nil, notConstructed("Redlock.Acquire")
	}
	b := redisx.Backoff{D: time.Millisecond, Max: 32 * time.Millisecond}
	var at redisx.Attempts
	for ctx.Err() == nil {
		a := r.attempt(ctx)
		if a.lease != nil {
			return a.lease, nil
		}
		switch {
		case a.refused > len(r.nodes)-r.quorum:
			return nil, fmt.Errorf("redislab: Redlock.Acquire: %w", a.reason())
		case a.held():
			at.Held()
		default:
			at.Failed(ctx, a.reason())
		}
		if redisx.SleepCtx(ctx, b.Next()) != nil {
			break
		}
	}
	return nil, at.Err("redislab: Redlock.Acquire", ctx)
}

// TryAcquire makes one Redlock attempt: the lease if a quorum granted it
// with validity left; otherwise contend.ErrHeld (wrapped) when enough
// servers answered but too few granted, or ErrNoQuorum (wrapped, with each
// server's error) when too few answered or accept requests. A failed
// attempt is undone on every server before TryAcquire returns (bounded by
// the per-node timeout); a server that could not be reached then is cleaned
// up in the background (see Settle).
func (r *Redlock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if len(r.nodes) == 0 {
		return nil, notConstructed("Redlock.TryAcquire")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redislab: Redlock.TryAcquire: %w", err)
	}
	a := r.attempt(ctx)
	if a.lease != nil {
		return a.lease, nil
	}
	return nil, fmt.Errorf("redislab: Redlock.TryAcquire: %w", a.reason())
}

// redlockAttempt is what one attempt found on the servers.
type redlockAttempt struct {
	r        *Redlock
	ctx      context.Context
	lease    *redlockLease
	errs     []error
	granted  int
	answered int // replies, grants and refusals
	refused  int // errors that will not clear
	elapsed  time.Duration
}

// held reports whether enough servers answered, but too few granted.
func (a *redlockAttempt) held() bool { return a.answered-a.refused >= a.r.quorum }

// reason says why the attempt failed, without a package prefix.
func (a *redlockAttempt) reason() error {
	r := a.r
	switch {
	case a.refused > len(r.nodes)-r.quorum:
		return fmt.Errorf("%w (%d of %d servers refuse requests, quorum %d): %w",
			ErrNoQuorum, a.refused, len(r.nodes), r.quorum, errors.Join(a.errs...))
	case !a.held() && a.ctx.Err() != nil:
		return fmt.Errorf("%w (%w)", a.ctx.Err(), errors.Join(a.errs...))
	case !a.held():
		return fmt.Errorf("%w (%d of %d answered, quorum %d): %w",
			ErrNoQuorum, a.answered-a.refused, len(r.nodes), r.quorum, errors.Join(a.errs...))
	case a.granted >= r.quorum:
		return fmt.Errorf("%w (quorum granted, but the %v it took left no validity)", contend.ErrHeld, a.elapsed)
	}
	return fmt.Errorf("%w (%d of %d granted, quorum %d)", contend.ErrHeld, a.granted, len(r.nodes), r.quorum)
}

// attempt runs one Redlock attempt, and undoes it unless it succeeded.
func (r *Redlock) attempt(ctx context.Context) *redlockAttempt {
	ctx = r.with(ctx)
	id := newID()
	start := time.Now()
	tokens := make([]uint64, len(r.nodes))
	errs := make([]error, len(r.nodes))
	r.each(func(i int, n *lockNode) {
		nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
		defer cancel()
		var err error
		// Sent once: Redlock retries whole attempts, and go-redis's retries
		// would outlast the node timeout and hide their error behind it.
		if tokens[i], _, err = n.acquire(nctx, id, false, true); err != nil {
			errs[i] = fmt.Errorf("server %d: %w", i, err)
		}
	})
	a := &redlockAttempt{r: r, ctx: ctx, errs: errs, elapsed: time.Since(start)}
	var maxTok uint64
	for i, err := range errs {
		switch {
		case err == nil:
			a.answered++
			if tokens[i] > 0 {
				a.granted++
				maxTok = max(maxTok, tokens[i])
			}
		case !redisx.Transient(err):
			a.answered++
			a.refused++
		}
	}
	if a.granted >= r.quorum && r.ttl-a.elapsed-redisx.DriftFor(r.ttl) > 0 {
		uncertain := make([]bool, len(r.nodes))
		for i, err := range errs {
			uncertain[i] = err != nil && !redisx.Definitive(err)
		}
		a.lease = &redlockLease{r: r, id: id, token: maxTok, tokens: tokens, uncertain: uncertain}
		a.lease.v.Set(start, r.ttl)
		return a
	}
	r.undo(ctx, id)
	return a
}

// undo abandons id on every server, in parallel; servers that do not answer
// within the per-node timeout are retried in the background.
func (r *Redlock) undo(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	r.each(func(_ int, n *lockNode) {
		nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
		err := n.abandon(nctx, id)
		cancel()
		if err != nil {
			r.abandon(func(ctx context.Context) error { return n.abandon(r.with(ctx), id) })
		}
	})
}

// each runs fn on every node at once and waits for all.
func (r *Redlock) each(fn func(i int, n *lockNode)) {
	var wg sync.WaitGroup
	for i := range r.nodes {
		wg.Go(func() { fn(i, &r.nodes[i]) })
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
		r.each(func(i int, n *lockNode) {
			nctx, cancel := context.WithTimeout(ctx, r.nodeTimeout)
			defer cancel()
			var ok bool
			var err error
			if v := s.nodeValue(i); v != "" {
				ok, _, err = n.release(nctx, v, "")
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
	r.each(func(i int, n *lockNode) {
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
