package zklab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/contend-lab/contend"
)

// ErrClosed is returned (wrapped) by a Client's methods, and by the locks
// and semaphores built on it, after Close.
var ErrClosed = errors.New("zklab: client is closed")

// ErrBadTTL is returned (wrapped) for a session timeout or Extend ttl that
// is not positive, or an Extend ttl longer than the session's timeout.
var ErrBadTTL = errors.New("zklab: bad ttl")

// Client is one ZooKeeper session, shared by the locks and semaphores built
// on it. go-zookeeper keeps the session alive with pings and moves it to
// another server of the ensemble when its server fails; when the session
// expires anyway (the servers heard nothing from it for its timeout), the
// Client notices when it reconnects, every lease of the old session reports
// itself lost, and a new session takes over. Its methods are safe for
// concurrent use; Close it when done.
type Client struct {
	conn    *zk.Conn
	hosts   *hosts
	s       *session
	timeout time.Duration // requested session timeout
	setup   time.Duration // bound of Dial's wait and of constructors' round trips

	// gen counts the sessions that have ended: an expiry the client was
	// told of, and Close. A lease belongs to one generation.
	gen    atomic.Uint64
	closed atomic.Bool
	ready  chan struct{} // closed at the first session
	once   sync.Once

	bgMu sync.Mutex     // orders background against Close
	bg   sync.WaitGroup // background clean-ups of abandoned nodes
}

// background runs fn on its own goroutine, counted by bg, unless the client
// is closed (closing the session deletes every node a clean-up could).
func (c *Client) background(fn func()) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.closed.Load() {
		return
	}
	c.bg.Go(fn)
}

// Option configures Dial.
type Option func(*options)

type options struct {
	setup  time.Duration
	logger zk.Logger
}

// WithSetupTimeout bounds how long Dial waits for the first session, and
// how long a constructor (NewLock, NewSemaphore) waits for the round trips
// that set up its znode. The default is 10 s.
func WithSetupTimeout(d time.Duration) Option { return func(o *options) { o.setup = d } }

// WithLogger sends go-zookeeper's log lines (connections, reconnections,
// failures) to l. By default they are discarded.
func WithLogger(l zk.Logger) Option { return func(o *options) { o.logger = l } }

type discard struct{}

func (discard) Printf(string, ...any) {}

// Dial connects to the ZooKeeper servers at endpoints ("host:port", one
// ensemble) and returns once it has a session, asking for sessionTimeout
// (the servers clamp it to their bounds; SessionTimeout says what they
// granted). The timeout is what a lease of the session is worth: a client
// cut off from the servers for longer loses its session and every lease of
// it.
func Dial(endpoints []string, sessionTimeout time.Duration, opts ...Option) (*Client, error) {
	o := options{setup: 10 * time.Second, logger: discard{}}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case len(endpoints) == 0:
		return nil, errors.New("zklab: Dial: no endpoints")
	case sessionTimeout < time.Millisecond:
		return nil, fmt.Errorf("zklab: Dial: session timeout %v: %w (want at least 1ms)", sessionTimeout, ErrBadTTL)
	case o.setup <= 0:
		return nil, fmt.Errorf("zklab: Dial: setup timeout %v must be positive", o.setup)
	}
	c := &Client{s: &session{}, timeout: sessionTimeout, setup: o.setup, ready: make(chan struct{})}
	hp := &hosts{}
	c.hosts = hp
	dialer := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, addr, timeout)
		if err == nil && conn.LocalAddr().String() == conn.RemoteAddr().String() {
			// Redialling a port nobody listens on, the kernel can pick
			// that very port as the local one: a TCP self-connection,
			// which would echo the client's requests back as replies.
			conn.Close()
			err = fmt.Errorf("zklab: dial %s: connected to itself", addr)
		}
		if err != nil {
			return nil, err
		}
		return newWireConn(conn, c.s, addr, hp.answered), nil
	}
	conn, _, err := zk.Connect(endpoints, sessionTimeout,
		zk.WithDialer(dialer), zk.WithHostProvider(hp), zk.WithEventCallback(c.event),
		zk.WithLogger(o.logger), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zklab: Dial %v: %w", endpoints, err)
	}
	c.conn = conn
	select {
	case <-c.ready:
		return c, nil
	case <-time.After(o.setup):
		conn.Close()
		return nil, fmt.Errorf("zklab: Dial %v: no session within %v", endpoints, o.setup)
	}
}

// event is go-zookeeper's callback; it must not block.
func (c *Client) event(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		c.once.Do(func() { close(c.ready) })
	case zk.StateExpired:
		c.gen.Add(1)
	}
}

// Close ends the session, which deletes its ephemeral znodes (every lease
// of it is lost, and every waiter's place in a queue is given up), and
// waits for the background clean-ups to stop. go-zookeeper gives a server
// that does not answer about 3 s to acknowledge the close. Close is
// idempotent.
func (c *Client) Close() error {
	if c == nil || c.conn == nil {
		return fmt.Errorf("zklab: Client.Close: %w", contend.ErrNotConstructed)
	}
	c.bgMu.Lock()
	wasClosed := c.closed.Swap(true)
	c.bgMu.Unlock()
	if wasClosed {
		return nil
	}
	c.gen.Add(1)
	c.conn.Close()
	c.bg.Wait()
	return nil
}

// Closed reports whether Close was called.
func (c *Client) Closed() bool { return c == nil || c.closed.Load() }

// RoundTrips returns how many requests the client has sent, failed ones
// included, counted on the wire: every request of every lock and semaphore
// on the client, but not go-zookeeper's pings and handshakes. It implements
// remote.RoundTripCounter.
func (c *Client) RoundTrips() int64 {
	if c == nil || c.s == nil {
		return 0
	}
	return c.s.requests.Load()
}

// SessionTimeout returns the session timeout the servers granted.
func (c *Client) SessionTimeout() time.Duration {
	if c == nil || c.s == nil {
		return 0
	}
	_, _, timeout, _ := c.s.credentials()
	return timeout
}

// Conn returns the go-zookeeper connection under the client, for code that
// needs its API directly (package zkref adapts go-zookeeper's own Lock on
// it). Requests sent on it are counted by RoundTrips.
func (c *Client) Conn() *zk.Conn {
	if c == nil {
		return nil
	}
	return c.conn
}

// Session returns a handle on the client's current session.
func (c *Client) Session() Session {
	if c == nil {
		return Session{}
	}
	return Session{c: c, gen: c.gen.Load()}
}

// Settle waits until every background clean-up (the deletion of a node
// whose Acquire gave up, or whose create's reply was lost) has reached the
// server or given up because the session ended, or until ctx is done.
// Tests call it before counting a queue's nodes.
func (c *Client) Settle(ctx context.Context) error {
	if c == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { c.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zklab: Settle: %w", ctx.Err())
	}
}

// Session is one session of a Client: the one a lease was granted in. Its
// zero value is a session that is not alive.
type Session struct {
	c   *Client
	gen uint64
}

// Alive reports whether the client has not learned that the session ended
// (expired, or the client closed). A session can be expired at the servers
// before the client learns it: see Left.
func (s Session) Alive() bool {
	return s.c != nil && s.c.conn != nil && !s.c.closed.Load() && s.c.gen.Load() == s.gen
}

// Left returns how long the session is sure to live even if the client
// hears nothing more from the servers: its timeout, from when the client
// sent the last request the servers have since answered (go-zookeeper
// pings every third of the timeout, so while the client is connected this
// stays above half the timeout), less a margin of a tenth of the timeout. The
// margin covers a member of an ensemble passing the session's activity on
// to its leader, once a half tick, so it assumes a tick of at most a fifth
// of the session timeout. 0 once the session is not Alive.
func (s Session) Left() time.Duration {
	if !s.Alive() {
		return 0
	}
	return s.c.s.left(func(t time.Duration) time.Duration { return t / 10 })
}

// ExpireSession ends the client's current session from a second connection
// that presents its id and password and closes it, as the servers would when
// its timeout passed without word from it (the technique of ZooKeeper's and
// Curator's own tests). Its ephemeral znodes are deleted at once; the
// client learns of it when the servers drop its connection, and
// ExpireSession returns once it has (its leases then report themselves
// lost), or when ctx is done. It is a fault hook for tests.
func (c *Client) ExpireSession(ctx context.Context) error {
	if c == nil || c.conn == nil {
		return fmt.Errorf("zklab: ExpireSession: %w", contend.ErrNotConstructed)
	}
	if c.closed.Load() {
		return fmt.Errorf("zklab: ExpireSession: %w", ErrClosed)
	}
	gen := c.gen.Load()
	id, passwd, timeout, server := c.s.credentials()
	if id == 0 {
		return errors.New("zklab: ExpireSession: no session yet")
	}
	c.hosts.gate.Lock()
	err := closeSession(ctx, server, id, passwd, timeout)
	c.hosts.gate.Unlock()
	if err != nil {
		return fmt.Errorf("zklab: ExpireSession %#x on %s: %w", id, server, err)
	}
	for c.gen.Load() == gen {
		select {
		case <-ctx.Done():
			return fmt.Errorf("zklab: ExpireSession %#x: the client has not noticed: %w", id, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// closeSession joins session id on addr and closes it: a ConnectRequest
// with its id and password, then a CloseSession request.
func closeSession(ctx context.Context, addr string, id int64, passwd []byte, timeout time.Duration) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// ConnectRequest: protocol version, last zxid seen, timeout (ms),
	// session id, password (length-prefixed).
	req := binary.BigEndian.AppendUint32(nil, uint32(4+8+4+8+4+len(passwd)))
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, uint32(timeout.Milliseconds()))
	req = binary.BigEndian.AppendUint64(req, uint64(id))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	if _, err := conn.Write(req); err != nil {
		return err
	}
	resp, err := readFrame(conn)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:])) != id {
		return nil // the session is gone already
	}
	// CloseSession: xid 1, opcode -11.
	closeReq := binary.BigEndian.AppendUint32(nil, 8)
	closeReq = binary.BigEndian.AppendUint32(closeReq, 1)
	op := int32(opCloseSession)
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(op))
	if _, err := conn.Write(closeReq); err != nil {
		return err
	}
	if _, err := readFrame(conn); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

// Do runs fn, a request on the client's go-zookeeper connection (Conn),
// bounded by ctx: it returns fn's results, or ctx.Err() once ctx is done,
// leaving fn to finish in the background (its results are then dropped).
// go-zookeeper's own calls take no context. After Close it returns
// ErrClosed without calling fn. For designs built on a Client by other
// packages (zknaive, zkref).
func Do[T any](ctx context.Context, c *Client, fn func() (T, error)) (T, error) {
	var zero, v T
	if c == nil || c.conn == nil {
		return zero, fmt.Errorf("zklab: Do: %w", contend.ErrNotConstructed)
	}
	if err := c.call(ctx, func() (err error) {
		v, err = fn()
		return err
	}); err != nil {
		return zero, err
	}
	return v, nil
}

// CreatePath creates the znode path and its missing ancestors, empty and
// persistent, within ctx. An existing path is left as it is.
func (c *Client) CreatePath(ctx context.Context, path string) error {
	if c == nil || c.conn == nil {
		return fmt.Errorf("zklab: CreatePath: %w", contend.ErrNotConstructed)
	}
	if err := checkPath(path); err != nil {
		return err
	}
	if _, err := c.ensure(ctx, path, nil); err != nil {
		return fmt.Errorf("zklab: CreatePath(%q): %w", path, err)
	}
	return nil
}
