package etcdlab

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// deletions follows the deletions of keys under one queue's prefix, with
// one etcd watch per queue and client, and tells each waiter of the
// deletions of the keys it waits for.
//
// One watch per waiter would be the recipe to the letter, and is what the
// etcd client serves worst: a watch costs a round trip to create and
// another to cancel, and the client creates the watches of one gRPC stream
// one after another, each waiting for the server's answer to the one
// before, so that with a hundred waiters on one client a new watch was
// created hundreds of milliseconds late (a waiter that had to create one
// per key ahead of it that left). Here a client with waiters receives
// every deletion under the prefix once, one small message, and wakes only
// the waiters whose keys of interest were deleted: no herd of requests.
//
// The watch runs while anyone is subscribed. It remembers the deletions it
// has seen (a bounded number), so that a waiter that subscribes with a
// revision the watch has already passed learns of a deletion it would
// otherwise have missed; a waiter whose revision is older than what the
// watch knows is told to read again (stale).
type deletions struct {
	c      *Client
	prefix string // the queue's keys' prefix, with its "/"

	mu       sync.Mutex
	subs     map[string]map[*sub]struct{} // key of interest -> subscribers
	nsubs    int
	cancel   context.CancelFunc // of the running watch; nil if none
	gen      int                // incarnation of the watch, for its gRPC stream's metadata
	from     int64              // deletions are known for the revisions after from, up to seen
	seen     int64
	gone     map[string]int64 // deleted key -> revision, for revisions after from
	goneFIFO []string         // gone's keys in revision order, for pruning
}

// maxGone bounds the deletions remembered; pruning moves from forward.
const maxGone = 4096

func newDeletions(c *Client, prefix string) *deletions {
	return &deletions{c: c, prefix: prefix, subs: map[string]map[*sub]struct{}{}, gone: map[string]int64{}}
}

// sub is one waiter's subscription to the deletion of some keys.
type sub struct {
	keys []string
	wake chan struct{} // a token when hit or stale

	// under deletions.mu:
	hit        []string // keys of interest deleted, not yet taken
	stale      bool     // the watch lost track: read again
	registered bool     // counted in nsubs
}

// subscribe registers interest in the deletion of keys, which all existed
// at revision rev. A key already known deleted is a hit at once; a rev the
// watch cannot vouch for makes the subscription stale at once.
func (d *deletions) subscribe(rev int64, keys ...string) *sub {
	s := &sub{keys: keys, wake: make(chan struct{}, 1)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel == nil {
		d.start(rev)
	}
	if rev < d.from {
		s.stale = true
		s.wake <- struct{}{}
		return s
	}
	for _, k := range keys {
		if _, ok := d.gone[k]; ok {
			s.hit = append(s.hit, k)
			continue
		}
		m := d.subs[k]
		if m == nil {
			m = map[*sub]struct{}{}
			d.subs[k] = m
		}
		m[s] = struct{}{}
	}
	s.registered = true
	d.nsubs++
	if len(s.hit) > 0 {
		s.wake <- struct{}{}
	}
	return s
}

// unsubscribe ends s, and the watch with the last subscription.
func (d *deletions) unsubscribe(s *sub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !s.registered {
		return // made stale at subscribe
	}
	s.registered = false
	for _, k := range s.keys {
		if m := d.subs[k]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(d.subs, k)
			}
		}
	}
	d.nsubs--
	if d.nsubs == 0 && d.cancel != nil {
		d.cancel()
		d.cancel = nil
		d.from = max(d.from, d.seen) // nothing is followed after seen from now on
	}
}

// take returns the keys of interest deleted since the last take, and
// whether s went stale.
func (d *deletions) take(s *sub) ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	hit := s.hit
	s.hit = nil
	return hit, s.stale
}

// start starts a watch of the prefix from after revision rev; d.mu held.
// Each incarnation has gRPC metadata of its own, so that it gets a gRPC
// stream of its own rather than one stalled by a paused member.
func (d *deletions) start(rev int64) {
	if rev > d.seen {
		d.from = max(d.from, rev)
		d.seen = rev
	}
	d.gen++
	ctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(context.Background()),
		"contend-queue", fmt.Sprintf("%s#%d", d.prefix, d.gen))
	ctx, d.cancel = context.WithCancel(ctx)
	d.c.loops.Add(1)
	go d.follow(ctx, d.cancel, d.gen, d.seen+1)
}

// restart replaces the running watch with a new one from where it got to:
// a waiter's timer found a deletion the watch did not report (its stream
// stalls on a paused member, say).
func (d *deletions) restart() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.start(d.seen)
}

// follow creates the watch from revision from and dispatches its
// deletions until it ends; if it ends while it is still the running one (an
// error, not a cancel), every subscriber goes stale and the next
// subscription starts a new watch. The watch is created here, not under
// d.mu: the etcd client's Watch blocks until its gRPC stream takes the
// request, which a stream to a paused member never does.
func (d *deletions) follow(ctx context.Context, cancel context.CancelFunc, gen int, from int64) {
	defer d.c.loops.Done()
	wch := d.c.cli.Watch(ctx, d.prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithFilterPut())
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case wr, ok = <-wch:
		case <-d.c.done:
			cancel()
			return
		}
		if !ok || wr.Err() != nil {
			cancel()
			d.lost(gen)
			return
		}
		d.mu.Lock()
		for _, ev := range wr.Events {
			d.deleted(string(ev.Kv.Key), ev.Kv.ModRevision)
		}
		if wr.Header.Revision > d.seen && ctx.Err() == nil {
			d.seen = wr.Header.Revision
		}
		d.mu.Unlock()
	}
}

// deleted records that key was deleted at rev and wakes its subscribers;
// d.mu held.
func (d *deletions) deleted(key string, rev int64) {
	if _, dup := d.gone[key]; dup || rev <= d.from {
		return
	}
	d.gone[key] = rev
	d.goneFIFO = append(d.goneFIFO, key)
	if len(d.goneFIFO) > maxGone {
		old := d.goneFIFO[0]
		d.from = max(d.from, d.gone[old])
		delete(d.gone, old)
		d.goneFIFO = d.goneFIFO[1:]
	}
	for s := range d.subs[key] {
		s.hit = append(s.hit, key)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	delete(d.subs, key)
	if rev > d.seen {
		d.seen = rev
	}
}

// lost handles the end of watch incarnation gen: if it is still the
// running one (it failed rather than being stopped or replaced), every
// subscriber goes stale (it reads again, and subscribes again, which starts
// a new watch).
func (d *deletions) lost(gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.gen || d.cancel == nil {
		return
	}
	d.cancel = nil
	d.from = max(d.from, d.seen)
	for _, m := range d.subs {
		for s := range m {
			s.stale = true
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// await waits for s to be woken, for recheckEvery (then it returns false
// and the caller reads again), ctx's end, the lease's loss, or the client's
// Close.
func (d *deletions) await(ctx context.Context, s *sub, lease *session) (bool, error) {
	t := time.NewTimer(d.c.recheck)
	defer t.Stop()
	select {
	case <-s.wake:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-lease.lost:
		return false, errSessionLost
	case <-d.c.done:
		return false, ErrClosed
	}
}
