package redislab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redisx"

	"github.com/redis/go-redis/v9"
)

// Keys of a Lock on key K (and, per server, of a Redlock, which never
// queues):
//
//	K                 STRING "<holder id>:<fencing token>", PX: the holder
//	K:fence           STRING fencing counter
//	K:queue           ZSET   waiting id -> ticket (FIFO order)
//	K:qexp            ZSET   waiting id -> when it counts as gone (server µs)
//	K:qseq            STRING last ticket
//	K:wake:<process>  LIST   "<id>:<token>" of locks handed to that process's waiters
//	K:abandoned:<id>  STRING tombstone of an abandoned request
//
// A waiting id is "<process>.<random>", <process> naming the Lock value
// whose listener wakes it.

// lockQueueLua defines, over KEYS 1 lock, 2 fence, 3 queue, 4 qexp and
// ARGV 2 ttl ms: clock() (the server's time in µs, read once), grant(who)
// (a new token to who, out of the queue), head() (the first waiter still
// polling, dropping those ahead of it that stopped) and passOn(mine) (a
// free lock to head(), its "<id>:<token>" pushed to its process's wake-up
// list, or returned if that process is mine, the caller's; deleted if
// nobody waits). Stale waiters behind the head are dropped when they reach
// it.
const lockQueueLua = nextFenceLua + `
local now
local function clock()
  if not now then now = servertime() end
  return now
end
local function grant(who)
  local f = fence(KEYS[2], clock())
  local v = who .. ':' .. string.format('%d', f)
  redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
  if redis.call('ZREM', KEYS[3], who) == 1 then redis.call('ZREM', KEYS[4], who) end
  return f, v
end
local function head()
  while true do
    local h = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not h then return nil end
    local exp = tonumber(redis.call('ZSCORE', KEYS[4], h))
    if exp and exp > clock() then return h end
    redis.call('ZREM', KEYS[3], h)
    redis.call('ZREM', KEYS[4], h)
  end
end
local function passOn(mine)
  local h = head()
  if not h then
    redis.call('DEL', KEYS[1])
    return ''
  end
  local _, v = grant(h)
  local p = string.match(h, '^[^.]*')
  if p == mine then return v end
  local wake = KEYS[1] .. ':wake:' .. p
  redis.call('RPUSH', wake, v)
  redis.call('PEXPIRE', wake, ARGV[2])
  return ''
end
`

// lockAcquireScript: KEYS 1-4 as lockQueueLua, 5 qseq, 6 tombstone; ARGV
// 1 id, 2 ttl ms, 3 wait ("1": join or keep a place in the queue; "0":
// try, never queue), 4 waiter staleness µs. Returns {token, 0, 0} if id
// holds the lock now (granted by this call, by an earlier run of the same
// request, or handed to it: its expiry then restarts at ttl, so that the
// caller may count the lease from this request); {0, the lock's PTTL, the
// fencing counter} if not now; {-1, 0, 0} if the request was abandoned. A
// free lock goes to the queue's head: TryAcquire never overtakes a waiter,
// and whoever finds a free lock with waiters hands it on.
var lockAcquireScript = newScript(lockQueueLua + `
if redis.call('EXISTS', KEYS[6]) == 1 then return {-1, 0, 0} end
local cur = redis.call('GET', KEYS[1])
if cur then
  local who, f = string.match(cur, '^(.*):(%d+)$')
  if who == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {tonumber(f), 0, 0}
  end
else
  local h = head()
  if not h or h == ARGV[1] then
    local f = grant(ARGV[1])
    return {f, 0, 0}
  end
  passOn('')
end
if ARGV[3] == '1' then
  if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[5]), ARGV[1])
  end
  redis.call('ZADD', KEYS[4], clock() + tonumber(ARGV[4]), ARGV[1])
end
return {0, redis.call('PTTL', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}
`)

// lockReleaseScript: compare, then hand on or delete. KEYS 1-4 as
// lockQueueLua; ARGV "<id>:<token>", ttl ms, the releaser's process.
// Returns {0, ”} if the value does not hold the lock; {1, ”} once
// released; {1, "<id>:<token>"} once handed to a waiter of the releaser's
// own process, which the releaser wakes itself, without the list.
var lockReleaseScript = newScript(lockQueueLua + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, ''} end
return {1, passOn(ARGV[3])}
`)

// lockExtendScript: compare-and-PEXPIRE. KEYS lock; ARGV "<id>:<token>", ttl ms.
var lockExtendScript = newScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// lockAbandonScript: tombstone the id, take it out of the queue, and pass
// the lock on if id holds it (granted or handed). KEYS 1-4 as
// lockQueueLua, 5 tombstone; ARGV id, ttl ms, retention ms.
var lockAbandonScript = newScript(lockQueueLua + `
redis.call('SET', KEYS[5], '1', 'PX', ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^(.*):%d+$') == ARGV[1] then
  passOn('')
  return 1
end
return 0
`)

const (
	// waiterStale is how long a waiter may go without polling before it
	// loses its place in the queue (Lock and Semaphore).
	waiterStale = time.Second
	// pollMax is the longest a Lock waiter goes without polling: well
	// inside waiterStale, so a live waiter keeps its place through a few
	// slow polls. Short leases poll more often (pollEvery).
	pollMax = 250 * time.Millisecond
	// wakeBlock is how long the listener's BLPOP blocks (go-redis sends
	// whole seconds); it is also how long the listener outlives the last
	// waiter.
	wakeBlock = time.Second
)

// lockNode is the single-server lock protocol, shared by Lock and Redlock.
type lockNode struct {
	c         redis.UniversalClient
	keys      [5]string // lock, fence, queue, qexp, qseq
	ttlMillis int64
	retainMs  int64
}

func newLockNode(c redis.UniversalClient, key string, ttl time.Duration) lockNode {
	return lockNode{
		c:         c,
		keys:      [5]string{key, key + ":fence", key + ":queue", key + ":qexp", key + ":qseq"},
		ttlMillis: ttl.Milliseconds(),
		retainMs:  retention(ttl).Milliseconds(),
	}
}

func (n *lockNode) tomb(id string) string { return n.keys[0] + ":abandoned:" + id }

// notNow is an acquire script's answer when id does not hold the lock.
type notNow struct {
	pttl  time.Duration // the lock's remaining expiry (<= 0: none, or not held)
	fence uint64        // the fencing counter: a hand-off after this reply has a greater token
}

// acquire returns the token (> 0) if id holds the lock; otherwise 0 and
// what the script saw, or an error (errAbandoned, or the client's). With
// wait, id joins the queue (or refreshes its place). With once, go-redis
// does not retry the request: the caller's loop does, and so sees the
// error (a refused dial) that go-redis's retries would hide behind the
// deadline that cut them short.
func (n *lockNode) acquire(ctx context.Context, id string, wait, once bool) (uint64, notNow, error) {
	w := "0"
	if wait {
		w = "1"
	}
	keys := []string{n.keys[0], n.keys[1], n.keys[2], n.keys[3], n.keys[4], n.tomb(id)}
	v, err := lockAcquireScript.run(ctx, n.c, once, keys,
		id, n.ttlMillis, w, waiterStale.Microseconds()).Int64Slice()
	switch {
	case err != nil:
		return 0, notNow{}, err
	case len(v) != 3:
		return 0, notNow{}, fmt.Errorf("acquire script returned %v", v)
	case v[0] < 0:
		return 0, notNow{}, errAbandoned
	}
	return uint64(v[0]), notNow{pttl: time.Duration(v[1]) * time.Millisecond, fence: uint64(v[2])}, nil
}

// release reports whether value held the lock (now released or handed
// on), and the "<id>:<token>" handed to a waiter of process, if one was.
func (n *lockNode) release(ctx context.Context, value, process string) (bool, string, error) {
	v, err := lockReleaseScript.run(ctx, n.c, false, n.keys[:4], value, n.ttlMillis, process).Slice()
	if err != nil {
		return false, "", err
	}
	if len(v) == 2 {
		held, ok := v[0].(int64)
		handed, ok2 := v[1].(string)
		if ok && ok2 {
			return held == 1, handed, nil
		}
	}
	return false, "", fmt.Errorf("release script returned %v", v)
}

func (n *lockNode) extend(ctx context.Context, value string, ttl time.Duration) (bool, error) {
	v, err := lockExtendScript.run(ctx, n.c, false, n.keys[:1], value, ttl.Milliseconds()).Int64()
	return v == 1, err
}

func (n *lockNode) abandon(ctx context.Context, id string) error {
	keys := []string{n.keys[0], n.keys[1], n.keys[2], n.keys[3], n.tomb(id)}
	return lockAbandonScript.run(ctx, n.c, false, keys, id, n.ttlMillis, n.retainMs).Err()
}

func lockValue(id string, token uint64) string {
	return id + ":" + strconv.FormatUint(token, 10)
}

// Lock is a contend.Lock on one Redis server, fair and fenced: waiters are
// served in FIFO order, Release hands the lock to the next one in the same
// script and wakes it, and each holder's fencing token exceeds the last.
// Uncontended, Acquire and Release cost one round trip each; a waiter costs
// one more to join the queue, and one more if woken through another
// process's list (BenchmarkLockHandoff).
//
// At most one holder at a time as the server sees it, while the server
// keeps its data; mutual exclusion of the work needs fencing (a holder that
// stalls past its TTL is no longer the holder). A lease handed over on
// release counts its TTL from the waiter's last poll, at most
// min(ttl/8, 250 ms) before the hand-off, so its TTL may read that much
// short. TryAcquire reports ErrHeld while waiters queue, and, as the FIFO
// in-process locks do, while the lock is handed to a waiter that has not
// yet taken it up or passed it on.
//
// The zero value refuses every call (contend.ErrNotConstructed): use
// NewLock.
type Lock struct {
	roundTrips
	cleaner
	node      lockNode
	ttl       time.Duration
	pollEvery time.Duration
	wake      listener
}

// NewLock returns a Lock on key with leases of ttl (at least 1 ms, in whole
// milliseconds), on the caller's client (see the package doc; its pool
// needs a second connection for the wake-up listener). It uses key and
// key+":fence", ":queue", ":qexp", ":qseq", ":wake:<process>" and
// ":abandoned:<id>". Every Lock on the same key must use the same ttl; one
// Lock value serves any number of goroutines.
func NewLock(client redis.UniversalClient, key string, ttl time.Duration) (*Lock, error) {
	s, err := checkClient("NewLock", "Lock", client, key)
	if err != nil {
		return nil, err
	}
	if s.PoolSize == 1 {
		return nil, fmt.Errorf("redislab: NewLock: PoolSize 1: the wake-up listener holds a connection while goroutines wait: %w", ErrClientConfig)
	}
	if err := checkTTL("NewLock", ttl); err != nil {
		return nil, err
	}
	process := newID()[:16]
	l := &Lock{node: newLockNode(client, key, ttl), ttl: ttl, pollEvery: min(pollMax, max(ttl/8, time.Millisecond))}
	l.window = retention(ttl)
	l.wake = listener{c: client, key: key + ":wake:" + process, process: process, rt: &l.rt, waiting: map[string]*waiter{}}
	return l, nil
}

// Acquire waits in the FIFO queue until it holds the lock, or returns
// ctx.Err() (wrapped, with what it last ran into: an error, the lock held,
// or no reply) once ctx is done, leaving the queue in the background.
// Errors that may clear (network, timeouts, LOADING...) are retried with
// backoff; others are returned at once (see the package doc).
func (l *Lock) Acquire(ctx context.Context) (contend.Lease, error) {
	if l.node.c == nil {
		return nil, notConstructed("Lock.Acquire")
	}
	ctx = l.with(ctx)
	id := l.wake.process + "." + newID()
	w := l.wake.add(id)
	defer l.wake.remove(id)
	var (
		at     redisx.Attempts
		since  time.Time // start of the first attempt whose outcome is unknown
		polled time.Time // start of the last attempt that found the lock not ours
		seen   uint64    // the fencing counter that attempt saw
		b      = redisx.Backoff{D: time.Millisecond, Max: 32 * time.Millisecond}
	)
	for ctx.Err() == nil {
		start := time.Now()
		tok, not, err := l.node.acquire(ctx, id, true, true)
		var pause time.Duration
		switch {
		case err == nil && tok > 0:
			// The grant may be an earlier attempt's, run late: count the
			// validity from the earliest attempt that may have made it.
			return l.lease(id, tok, earliest(since, start)), nil
		case err == nil:
			at.Held()
			if polled.IsZero() {
				l.wake.enqueued(w)
			}
			polled, seen = start, not.fence
			pause = l.pollAfter(not.pttl)
		case !redisx.Transient(err):
			if !polled.IsZero() || !since.IsZero() {
				l.abandonID(id)
			}
			return nil, fmt.Errorf("redislab: Lock.Acquire: %w", err)
		default:
			at.Failed(ctx, err)
			if !redisx.Definitive(err) && since.IsZero() {
				since = start
			}
			pause = b.Next()
		}
		// A ctx that ended before the release that woke us fails the call,
		// as x/sync/semaphore's does; our abandonment passes the lock on.
		if !w.wait(ctx, pause) || ctx.Err() != nil {
			break
		}
		// A token above the counter our last poll saw was issued after that
		// poll ran: the hand-off, and the ttl it started, came after polled.
		if tok := w.handed(); tok > seen && !polled.IsZero() {
			if s := l.lease(id, tok, earliest(since, polled)); s.v.Remaining() > 0 {
				return s, nil
			}
		}
	}
	if !polled.IsZero() || !since.IsZero() {
		l.abandonID(id) // leave the queue; undo or pass on what we did not hear of
	}
	return nil, at.Err("redislab: Lock.Acquire", ctx)
}

// pollAfter is how long a queued waiter waits for a wake-up before it
// polls: until the holder's expiry is due (a crashed holder's lock is then
// free), at most pollEvery.
func (l *Lock) pollAfter(pttl time.Duration) time.Duration {
	if pttl <= 0 || pttl >= l.pollEvery {
		return redisx.Jitter(l.pollEvery)
	}
	return pttl + time.Millisecond
}

// TryAcquire makes one attempt: the lock's lease, contend.ErrHeld (wrapped)
// if another holder has it or waiters queue for it, or the error from
// Redis. After an error whose outcome is unknown (timeout), the attempt is
// abandoned in the background, so a lock it may have taken is freed.
func (l *Lock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	if l.node.c == nil {
		return nil, notConstructed("Lock.TryAcquire")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redislab: Lock.TryAcquire: %w", err)
	}
	ctx = l.with(ctx)
	id := newID()
	start := time.Now()
	tok, _, err := l.node.acquire(ctx, id, false, false)
	switch {
	case err == nil && tok > 0:
		return l.lease(id, tok, start), nil
	case err == nil:
		return nil, fmt.Errorf("redislab: Lock.TryAcquire: %w", contend.ErrHeld)
	}
	if !redisx.Definitive(err) {
		l.abandonID(id)
	}
	return nil, fmt.Errorf("redislab: Lock.TryAcquire: %w", err)
}

func (l *Lock) abandonID(id string) {
	l.abandon(func(ctx context.Context) error { return l.node.abandon(l.with(ctx), id) })
}

func (l *Lock) lease(id string, tok uint64, start time.Time) *lockLease {
	s := &lockLease{l: l, value: lockValue(id, tok), token: tok}
	s.v.Set(start, l.ttl)
	return s
}

// lockLease is a lease of a Lock.
type lockLease struct {
	l     *Lock
	value string
	token uint64
	v     redisx.Validity
	done  redisx.DoneFlag
}

func (s *lockLease) Token() uint64 { return s.token }

// Release hands the lock to the next waiter, or deletes it, if it still
// holds this lease's value. ErrNotHeld (wrapped) if it does not (expired,
// taken over, released already, or released by an earlier attempt of this
// call whose reply was lost). On a network error the lease is left as it
// was and Release may be called again.
func (s *lockLease) Release(ctx context.Context) error {
	return s.done.Release("redislab: Lock lease Release", func() (bool, error) {
		held, handed, err := s.l.node.release(s.l.with(ctx), s.value, s.l.wake.process)
		if handed != "" {
			s.l.wake.deliver(handed)
		}
		return held, err
	})
}

// Extend moves the key's expiry to ttl from now if this lease still holds
// it, and restarts the local validity from the instant before the request.
func (s *lockLease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("Lock lease Extend", ttl); err != nil {
		return err
	}
	if s.done.Released() {
		return fmt.Errorf("redislab: Lock lease Extend: %w", contend.ErrNotHeld)
	}
	start := time.Now()
	ok, err := s.l.node.extend(s.l.with(ctx), s.value, ttl)
	if err != nil {
		return fmt.Errorf("redislab: Lock lease Extend: %w", err)
	}
	if !ok {
		return fmt.Errorf("redislab: Lock lease Extend: %w", contend.ErrNotHeld)
	}
	s.v.Set(start, ttl)
	return nil
}

// TTL returns the lease's remaining validity by the local monotonic clock:
// ttl from the instant before the acquiring (or extending) request was
// sent, less elapsed time, less the drift allowance ttl×1% + 2 ms; 0 once
// that has run out.
func (s *lockLease) TTL() (time.Duration, bool) { return s.v.Remaining(), true }

// ---- wake-ups ----

// listener delivers the hand-offs that release scripts push to one Lock
// value's wake-up list: one goroutine blocks on the list (BLPOP) while any
// of the Lock's Acquires has a place in the queue, and passes each
// "<id>:<token>" it pops to the waiter named. The waiter takes the lease
// without another round trip when the token proves the hand-off came after
// its last poll (see Acquire); a stale wake-up costs nothing, and a lost
// one (a reply lost with its connection) a wait until the waiter's next
// poll.
type listener struct {
	c       redis.UniversalClient
	key     string // K:wake:<process>
	process string
	rt      *redisx.Counter

	mu      sync.Mutex
	waiting map[string]*waiter
	nqueued int // waiters with a place in the queue; the goroutine runs while > 0
	running bool
}

// waiter is one Acquire's wake-up.
type waiter struct {
	ch     chan struct{} // capacity 1: a wake-up not yet taken
	queued bool          // guarded by the listener's mu

	mu  sync.Mutex
	tok uint64 // the highest token handed to it
}

// handed returns the highest token the listener saw handed to wt.
func (wt *waiter) handed() uint64 {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.tok
}

// add registers id before its first attempt, so that a hand-off that
// arrives before the attempt's reply finds it.
func (w *listener) add(id string) *waiter {
	wt := &waiter{ch: make(chan struct{}, 1)}
	w.mu.Lock()
	w.waiting[id] = wt
	w.mu.Unlock()
	return wt
}

func (w *listener) remove(id string) {
	w.mu.Lock()
	if wt := w.waiting[id]; wt != nil && wt.queued {
		w.nqueued--
	}
	delete(w.waiting, id)
	w.mu.Unlock()
}

// enqueued records that wt has a place in the queue, and starts the
// listening goroutine if it is not running.
func (w *listener) enqueued(wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt.queued = true
	w.nqueued++
	if !w.running {
		w.running = true
		go w.listen()
	}
}

// wait waits d, or until a wake-up arrives, and reports false if ctx ended
// first.
func (wt *waiter) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wt.ch:
	case <-t.C:
	}
	return true
}

func (w *listener) listen() {
	b := redisx.Backoff{D: 5 * time.Millisecond, Max: 200 * time.Millisecond}
	for {
		w.mu.Lock()
		if w.nqueued == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		// go-redis gives a blocking command its timeout plus 10 s to
		// answer; the context bounds it closer, so that a stalled server
		// costs the listener a second, not eleven.
		ctx, cancel := context.WithTimeout(w.rt.With(context.Background()), wakeBlock+time.Second)
		ids, err := w.c.BLPop(ctx, wakeBlock, w.key).Result()
		cancel()
		switch {
		case err == nil && len(ids) == 2:
			w.deliver(ids[1])
			b = redisx.Backoff{D: 5 * time.Millisecond, Max: 200 * time.Millisecond}
		case err == nil, errors.Is(err, redis.Nil):
			// nothing handed to this process within wakeBlock
		case errors.Is(err, redis.ErrClosed):
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		default:
			// Waiters poll meanwhile; try again after a pause.
			time.Sleep(b.Next())
		}
	}
}

// deliver passes "<id>:<token>", a hand-off popped from the list, to the
// waiter it names.
func (w *listener) deliver(value string) {
	i := strings.LastIndexByte(value, ':')
	if i < 0 {
		return
	}
	tok, err := strconv.ParseUint(value[i+1:], 10, 64)
	if err != nil {
		return
	}
	w.mu.Lock()
	wt := w.waiting[value[:i]]
	w.mu.Unlock()
	if wt == nil {
		return // it gave up: its abandonment passes the lock on
	}
	wt.mu.Lock()
	wt.tok = max(wt.tok, tok)
	wt.mu.Unlock()
	select {
	case wt.ch <- struct{}{}:
	default:
	}
}
