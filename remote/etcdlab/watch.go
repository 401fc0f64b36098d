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
// before, so that with many waiters on one client a new watch was created
// late by a round trip per watch ahead of it. Here a client with waiters
// receives every deletion under the prefix once, one small message, and
// wakes only the waiters whose keys of interest were deleted: no herd of
// requests. The watch runs while anyone is subscribed, and for watchLinger
// after the last subscriber leaves, so that a queue that is empty for a
// moment (two contenders taking turns) does not start a watch per hand-off.
type deletions struct {
	c      *Client
	prefix string        // the queue's keys' prefix, with its "/"
	linger time.Duration // watchLinger; tests shorten it

	mu       sync.Mutex
	subs     map[string]map[*sub]struct{} // key of interest -> subscribers
	all      map[*sub]struct{}            // every registered subscriber
	idle     *time.Timer                  // stops the watch after linger without subscribers
	cancel   context.CancelFunc           // of the running watch; nil if none
	gen      int                          // incarnation of the watch, for its gRPC stream's metadata
	ready    bool                         // the running watch has said where it starts
	from     int64                        // deletions are known for the revisions after from, up to seen
	seen     int64
	gone     map[string]int64 // deleted key -> revision of its last deletion, for revisions after from
	goneFIFO []deletion       // the deletions in gone, in revision order, for pruning
}

// deletion is one key's deletion at a revision.
type deletion struct {
	key string
	rev int64
}

// maxGone bounds the deletions remembered; pruning moves from forward.
const maxGone = 4096

// watchLinger is how long a queue's watch outlives its last subscriber.
const watchLinger = 5 * time.Second

func newDeletions(c *Client, prefix string) *deletions {
	return &deletions{c: c, prefix: prefix, linger: watchLinger,
		subs: map[string]map[*sub]struct{}{}, all: map[*sub]struct{}{}, gone: map[string]int64{}}
}

// sub is one waiter's subscription to the deletion of some keys.
type sub struct {
	keys []string
	rev  int64         // the keys existed at this revision
	gen  int           // the watch incarnation it subscribed under
	wake chan struct{} // a token when hit or stale

	// under deletions.mu:
	hit   []string // keys of interest deleted, not yet taken
	stale bool     // the watch cannot vouch for rev: read again
}

func (s *sub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// subscribe registers interest in the deletion of keys, which all existed
// at revision rev. A key already known deleted is a hit at once; a rev the
// watch cannot vouch for makes the subscription stale, at once or when the
// watch has started.
func (d *deletions) subscribe(rev int64, keys ...string) *sub {
	s := &sub{keys: keys, rev: rev, wake: make(chan struct{}, 1)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.idle != nil {
		d.idle.Stop()
		d.idle = nil
	}
	if d.cancel == nil {
		d.start()
	}
	s.gen = d.gen
	if d.ready && rev < d.from {
		s.stale = true
		s.signal()
		return s
	}
	for _, k := range keys {
		if r, ok := d.gone[k]; ok && r > rev { // a key name is reused: only a later deletion counts
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
	d.all[s] = struct{}{}
	if len(s.hit) > 0 {
		s.signal()
	}
	return s
}

// unsubscribe ends s; the last subscription leaving starts the watch's
// linger.
func (d *deletions) unsubscribe(s *sub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.all[s]; !ok {
		return // made stale at subscribe
	}
	delete(d.all, s)
	for _, k := range s.keys {
		if m := d.subs[k]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(d.subs, k)
			}
		}
	}
	if len(d.all) == 0 && d.cancel != nil {
		gen := d.gen
		d.idle = time.AfterFunc(d.linger, func() { d.stop(gen) })
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

// start starts a new incarnation of the watch; d.mu held. Each incarnation
// has gRPC metadata of its own, so that it gets a gRPC stream of its own
// rather than one stalled on a paused member.
//
// The watch starts at the current revision, not at a waiter's: etcd
// catches a watch that starts in the past up with the present in a loop
// that runs every 100 ms, which made the first hand-off after every start
// wait for that loop. It tells which revision it started at (started), and
// a waiter that subscribed with an older revision is told to read again
// (stale), as is one whose revision is older than the deletions the watch
// remembers (at most maxGone, so that a waiter whose read predates a
// deletion the watch has already seen learns of it at once).
func (d *deletions) start() {
	d.gen++
	d.ready = false
	ctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(context.Background()),
		"contend-queue", fmt.Sprintf("%s#%d", d.prefix, d.gen))
	ctx, d.cancel = context.WithCancel(ctx)
	d.c.loops.Add(1)
	go d.follow(ctx, d.cancel, d.gen)
}

// stop stops watch incarnation gen if it still runs without subscribers.
func (d *deletions) stop(gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.gen || len(d.all) > 0 || d.cancel == nil {
		return
	}
	d.halt()
}

// halt stops the running watch; d.mu held. Nothing is followed after seen.
func (d *deletions) halt() {
	d.cancel()
	d.cancel = nil
	d.ready = false
	d.from = max(d.from, d.seen)
}

// restart replaces watch incarnation gen, if it still runs, with a new
// one: a waiter's timer found a deletion the watch did not report (its
// stream stalls on a paused member, say). Waiters that found the same
// stall replace it once: the others see a newer incarnation running.
func (d *deletions) restart(gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel == nil || gen != d.gen {
		return
	}
	d.halt()
	d.start()
	for s := range d.all { // the new watch may start after their revisions
		s.stale = true
		s.signal()
	}
}

// follow creates watch incarnation gen and dispatches its deletions until
// it ends; if it ends while it is still the running one (an error, not a
// stop), every subscriber goes stale and the next subscription starts a new
// watch. The watch is created here, not under d.mu: the etcd client's Watch
// blocks until its gRPC stream takes the request, which a stream to a
// paused member never does.
func (d *deletions) follow(ctx context.Context, cancel context.CancelFunc, gen int) {
	defer d.c.loops.Done()
	defer cancel()
	wch := d.c.cli.Watch(ctx, d.prefix, clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case wr, ok = <-wch:
		case <-d.c.done:
			return
		}
		if !ok || wr.Err() != nil {
			d.lost(gen)
			return
		}
		d.mu.Lock()
		if wr.Created {
			d.started(gen, wr.Header.Revision)
		}
		for _, ev := range wr.Events {
			d.deleted(string(ev.Kv.Key), ev.Kv.ModRevision)
		}
		if gen == d.gen && wr.Header.Revision > d.seen {
			d.seen = wr.Header.Revision
		}
		d.mu.Unlock()
	}
}

// started records that incarnation gen reports every deletion after
// revision at; d.mu held. Deletions between what was seen before and at
// are unknown: subscribers with an older revision go stale.
func (d *deletions) started(gen int, at int64) {
	if gen != d.gen {
		return
	}
	d.ready = true
	if at > d.seen {
		d.from = max(d.from, at)
		d.seen = at
	}
	for s := range d.all {
		if s.rev < d.from {
			s.stale = true
			s.signal()
		}
	}
}

// deleted records that key was deleted at rev and wakes its subscribers;
// d.mu held.
func (d *deletions) deleted(key string, rev int64) {
	if r, dup := d.gone[key]; (dup && rev <= r) || rev <= d.from {
		return // seen already (a replaced watch's events overlap)
	}
	d.gone[key] = rev
	d.goneFIFO = append(d.goneFIFO, deletion{key, rev})
	if len(d.goneFIFO) > maxGone {
		old := d.goneFIFO[0]
		d.from = max(d.from, old.rev)
		if d.gone[old.key] == old.rev {
			delete(d.gone, old.key)
		}
		d.goneFIFO = d.goneFIFO[1:]
	}
	for s := range d.subs[key] {
		if s.rev < rev { // it waits for a deletion after it saw the key
			s.hit = append(s.hit, key)
			s.signal()
			delete(d.subs[key], s)
		}
	}
	if len(d.subs[key]) == 0 {
		delete(d.subs, key)
	}
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
	d.halt()
	for s := range d.all {
		s.stale = true
		s.signal()
	}
}

// await waits for s to be woken (true), for the client's recheck interval
// (false: the caller reads again), ctx's end, the lease's loss, or the
// client's Close.
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
