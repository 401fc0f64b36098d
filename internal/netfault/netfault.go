// Package netfault injects network faults between one client and its
// servers, without root: a [Proxy] is a TCP proxy on a free 127.0.0.1 port
// that forwards to one server. A client that dials the proxy instead of the
// server has a path of its own, which can be cut, slowed or reset while other
// clients reach the same server directly or through proxies of their own.
// [Wrap] gives a client a view of a started [remote.Cluster] whose endpoints
// are such proxies.
//
// # The model
//
// A fault acts on bytes as they cross the proxy, the way it would act on the
// packets of a real path:
//
//   - Partition is a silent blackhole. The proxy forwards nothing either
//     way: it holds the first chunk that arrives from each side and reads no
//     more, so what a sender writes next waits in the kernel's buffers (and,
//     once they are full, the sender blocks) as it would behind a dead link
//     while TCP retransmits. Connections stay open; a new connection is accepted
//     but not connected to the server until the cut heals. The client learns
//     of the cut only through its own timeouts, as in a real partition: that
//     silence is what breaks lease-based locks, and refusing or resetting
//     would tell the client at once.
//   - Heal ends the cut and delivers what was held, in order, FINs included,
//     as TCP's retransmissions do after a short cut: a request the client
//     gave up on during the cut may still run on the server afterwards. A
//     long cut, after which the connections are dead (TCP's retransmission
//     timeout or keepalive gave up), is Partition, then ResetConnections,
//     then Heal: the held bytes are dropped and both ends see a reset.
//   - Latency delays each chunk by the latency set for its direction when it
//     arrived, in order, without adding up across pipelined chunks.
//   - A reset closes both ends of a connection with SO_LINGER 0, so that
//     each sees a TCP RST: a blocked read or write fails with ECONNRESET.
//
// Where the model differs from a real network: connection setup is local, so
// a client's dial succeeds even on a partitioned path (its first read times
// out instead), a refused connection or a server that is down shows as a
// reset (of the dial or of the first read) rather than ECONNREFUSED, and
// latency delays bytes, not the TCP handshake.
//
// # Why not toxiproxy
//
// github.com/Shopify/toxiproxy/v2 (v2.12.0) runs in process too, but its
// semantics are not these: removing its timeout toxic, the nearest thing to
// a cut, closes every connection it held, so a short cut cannot be healed;
// a connection made during the cut reaches the server at once; a reset_peer
// toxic added to a live connection closes it with a FIN, so the client reads
// EOF, not ECONNRESET. It also brings prometheus, zerolog, gorilla/mux and
// protobuf into the module. The proxy here is two small files that do
// exactly the model above.
package netfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotListening is returned by Close for a Proxy that Listen did not make.
var ErrNotListening = errors.New("netfault: proxy was not made by Listen")

// dialTimeout bounds the proxy's connect to its target. The target is on
// loopback, where a connect is answered at once unless the target is gone.
const dialTimeout = 5 * time.Second

// direction is the way bytes travel through a proxy.
type direction int

const (
	up   direction = iota // client to server
	down                  // server to client
)

// Proxy is a TCP proxy from a free 127.0.0.1 port to one target, and the
// faults it injects into the connections that cross it. Its methods are safe
// for concurrent use. Forwarding costs a copy and, while latency is set, a
// hand-off between goroutines per chunk; see BenchmarkRoundTrip.
//
// The zero value is a proxy that forwards nothing: its fault methods do
// nothing and Close returns ErrNotListening. Use Listen.
type Proxy struct {
	target string
	ln     *net.TCPListener
	ctx    context.Context // done once Close starts: stops dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
	healed chan struct{} // non-nil exactly while cut is true; closed by Heal

	cut       atomic.Bool
	refuse    atomic.Bool
	resetReq  atomic.Bool
	resetResp atomic.Bool
	latency   [2]atomic.Int64 // nanoseconds, by direction

	accepted atomic.Int64
	resets   atomic.Int64
	bytes    [2]atomic.Int64 // delivered, by direction
}

// Listen starts a proxy on a free 127.0.0.1 port that forwards every
// connection to target ("host:port"). The target need not be up: each
// connection dials it when it is accepted (or when a cut heals). The caller
// must Close the proxy.
func Listen(target string) (*Proxy, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("netfault: target %q: %w", target, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("netfault: target %q: port must be 1 to 65535", target)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("netfault: listen for %s: %w", target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: net.JoinHostPort(host, port),
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		links:  make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients dial, "127.0.0.1:port", or "" for the
// zero Proxy.
func (p *Proxy) Addr() string {
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Partition cuts the path: from its return, no byte the proxy receives is
// forwarded in either direction, and new connections are accepted but not
// connected to the target, until Heal. Bytes received before the call may
// still be delivered, as packets in flight would be. Partitioning a cut path
// does nothing.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healed == nil {
		p.healed = make(chan struct{})
	}
	p.cut.Store(true)
}

// Heal ends a Partition: what was held is delivered in order and held
// connections are connected to the target. Healing a path that is not cut
// does nothing.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut.Store(false)
	if p.healed != nil {
		close(p.healed)
		p.healed = nil
	}
}

// SetLatency delays every chunk of bytes that arrives from now on by
// toServer on its way from the client to the server and by toClient on its
// way back; a request's round trip grows by their sum. Bytes already held
// keep the delay they arrived with. Zero removes the delay. A negative
// duration is an error and changes nothing.
func (p *Proxy) SetLatency(toServer, toClient time.Duration) error {
	if toServer < 0 || toClient < 0 {
		return fmt.Errorf("netfault: SetLatency(%v, %v): latency must not be negative", toServer, toClient)
	}
	p.latency[up].Store(int64(toServer))
	p.latency[down].Store(int64(toClient))
	return nil
}

// ResetConnections resets every connection open through the proxy now,
// held ones included: both ends see a TCP RST and bytes held by a cut are
// dropped. It returns how many connections it reset. New connections are
// not affected.
func (p *Proxy) ResetConnections() int {
	p.mu.Lock()
	ls := make([]*link, 0, len(p.links))
	for l := range p.links {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	n := 0
	for _, l := range ls {
		if l.close(fault) {
			n++
		}
	}
	return n
}

// ResetNextRequest arms a one-shot reset: the next bytes a client sends
// through the proxy, on any connection, are dropped and that connection is
// reset. The server never sees the request; the client sees ECONNRESET and
// cannot tell whether the request ran. A connection's handshake counts as
// bytes too (see ResetNextResponse).
func (p *Proxy) ResetNextRequest() { p.resetReq.Store(true) }

// ResetNextResponse arms a one-shot reset: the next bytes the server sends
// through the proxy, on any connection, are dropped and that connection is
// reset. The request that caused them has run; the client sees ECONNRESET.
// The proxy knows bytes, not requests: a connection's handshake (Redis's
// HELLO) counts, so arm it once the client's connection is set up.
func (p *Proxy) ResetNextResponse() { p.resetResp.Store(true) }

// RefuseNew makes the proxy reset every connection it accepts from now on,
// at once, if refuse is true, and accept them again if it is false.
// Connections already open are not affected. The kernel completes the
// handshake on the proxy's socket before the proxy sees the connection, so
// the client's dial either fails with ECONNRESET or succeeds and its first
// read or write does.
func (p *Proxy) RefuseNew(refuse bool) { p.refuse.Store(refuse) }

// Stats is what crossed a proxy, as evidence for a fault scenario.
type Stats struct {
	Accepted int64 // connections accepted from clients
	Open     int   // connections open now, held ones included
	Resets   int64 // connections reset by a fault (RefuseNew included)
	ToServer int64 // bytes delivered to the server
	ToClient int64 // bytes delivered to clients
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := len(p.links)
	p.mu.Unlock()
	return Stats{
		Accepted: p.accepted.Load(),
		Open:     open,
		Resets:   p.resets.Load(),
		ToServer: p.bytes[up].Load(),
		ToClient: p.bytes[down].Load(),
	}
}

// Close stops the proxy: it stops listening, closes every connection (held
// bytes are dropped) and returns once every goroutine it started has ended.
// Closing a closed proxy returns nil.
func (p *Proxy) Close() error {
	if p.ln == nil {
		return ErrNotListening
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ls := make([]*link, 0, len(p.links))
	for l := range p.links {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, l := range ls {
		l.close(graceful)
	}
	p.wg.Wait()
	return err
}

// accept accepts connections until the listener is closed.
func (p *Proxy) accept() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: wait and retry, as
			// net/http's server does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		p.accepted.Add(1)
		l := &link{p: p, client: c, done: make(chan struct{})}
		l.open.Store(2)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go l.serve()
	}
}

// pass blocks while the path is cut, and reports whether l is still open.
func (p *Proxy) pass(l *link) bool {
	for p.cut.Load() {
		p.mu.Lock()
		healed := p.healed
		p.mu.Unlock()
		if healed == nil { // healed since the Load
			continue
		}
		select {
		case <-healed:
		case <-l.done:
			return false
		}
	}
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}
