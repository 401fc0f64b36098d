package zklab

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The client's connections are wrapped so that the Client can see what
// go-zookeeper does not expose: when the server last proved it heard from
// the session (for Lease.TTL), the session's id and password (for
// ExpireSession), and how many requests were sent (RoundTrips). The
// wrapper reads the ZooKeeper wire protocol's frame headers as they pass,
// and changes nothing.
//
// Frames are a 4-byte big-endian length and a body. The first frame each
// way is the session handshake (ConnectRequest, ConnectResponse); after it,
// a request body starts with its xid and opcode, and a reply body with the
// xid it answers, the zxid and an error code. xid -1 marks a watch
// notification (not a reply) and -2 a ping. A session's requests are
// answered in the order they were sent.

const (
	xidNotification = -1
	xidPing         = -2
	opCloseSession  = -11
	// headerBytes is the most of a frame the wrapper needs to see: a
	// ConnectResponse up to its 16-byte password.
	headerBytes = 4 + 4 + 4 + 8 + 4 + 16
)

// session is what the wire shows of the Client's session, shared by its
// connections over time.
type session struct {
	requests atomic.Int64 // requests sent: neither handshakes nor pings

	// cut, when positive, makes the connection drop right after sending a
	// request with opcode cutOp, cut times: the request reaches the
	// server, its reply is lost. A fault hook for tests.
	cut   atomic.Int32
	cutOp atomic.Int32

	mu sync.Mutex
	// heard is when the oldest request that the server has since answered
	// was sent, on the monotonic clock: the server heard from the session
	// at that instant or later, so it cannot expire it before heard plus
	// the timeout.
	heard   time.Time
	timeout time.Duration // negotiated; 0 before the first handshake
	id      int64
	passwd  []byte
	server  string // address of the connection that made the last handshake
}

// left returns how long the session is sure to live if the server hears
// nothing more from it, less margin: timeout - (now - heard) - margin.
func (s *session) left(margin func(time.Duration) time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeout == 0 {
		return 0
	}
	return max(0, s.timeout-time.Since(s.heard)-margin(s.timeout))
}

func (s *session) credentials() (id int64, passwd []byte, timeout time.Duration, server string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, append([]byte(nil), s.passwd...), s.timeout, s.server
}

// sent is one request in flight on a connection.
type sent struct {
	xid int32
	at  time.Time
}

// wireConn wraps one connection to a server.
type wireConn struct {
	net.Conn
	s    *session
	addr string

	// shook is set once the handshake's reply has been read.
	shook atomic.Bool

	mu       sync.Mutex // guards inflight and connectAt between the writer and the reader
	inflight []sent
	// connectAt is when the handshake was sent; zero until then.
	connectAt time.Time

	out, in framer

	// answered, if set, is called when the server answers the handshake,
	// whatever the answer (a session, or word that it expired).
	answered func()
}

func newWireConn(c net.Conn, s *session, addr string, answered func()) *wireConn {
	w := &wireConn{Conn: c, s: s, addr: addr, answered: answered}
	w.out.first, w.in.first = true, true
	return w
}

func (w *wireConn) Write(p []byte) (int, error) {
	now := time.Now()
	drop := false
	w.out.feed(p, func(hdr []byte, first bool) {
		if first {
			w.mu.Lock()
			w.connectAt = now
			w.mu.Unlock()
			return
		}
		if len(hdr) < 12 {
			return
		}
		xid := int32(binary.BigEndian.Uint32(hdr[4:]))
		if xid != xidPing {
			w.s.requests.Add(1)
		}
		if op := int32(binary.BigEndian.Uint32(hdr[8:])); op == w.s.cutOp.Load() && w.s.cut.Load() > 0 {
			drop = w.s.cut.Add(-1) >= 0
		}
		w.mu.Lock()
		w.inflight = append(w.inflight, sent{xid: xid, at: now})
		w.mu.Unlock()
	})
	n, err := w.Conn.Write(p)
	if drop {
		_ = w.Conn.Close()
	}
	return n, err
}

// handshakeTimeout bounds the wait for the handshake's reply. go-zookeeper
// waits ten times its receive timeout (6.7 session timeouts), and a
// ZooKeeper server that accepted the connection while it was starting can
// leave it unanswered for good (seen after restarts under load); a live
// server answers in milliseconds, so the client gives up after this and
// dials again.
const handshakeTimeout = 2 * time.Second

// SetReadDeadline clamps the deadline of the handshake's read to
// handshakeTimeout from now.
func (w *wireConn) SetReadDeadline(t time.Time) error {
	if !w.shook.Load() && !t.IsZero() {
		if limit := time.Now().Add(handshakeTimeout); t.After(limit) {
			t = limit
		}
	}
	return w.Conn.SetReadDeadline(t)
}

func (w *wireConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.in.feed(p[:n], w.reply)
	return n, err
}

// reply handles the header of one frame from the server.
func (w *wireConn) reply(hdr []byte, first bool) {
	if first {
		w.handshake(hdr)
		if w.answered != nil {
			w.answered()
		}
		return
	}
	if len(hdr) < 8 {
		return
	}
	xid := int32(binary.BigEndian.Uint32(hdr[4:]))
	if xid == xidNotification {
		return
	}
	w.mu.Lock()
	var at time.Time
	for i, r := range w.inflight {
		if r.xid == xid {
			at = r.at
			w.inflight = w.inflight[i+1:]
			break
		}
	}
	w.mu.Unlock()
	if !at.IsZero() {
		w.s.mu.Lock()
		if at.After(w.s.heard) {
			w.s.heard = at
		}
		w.s.mu.Unlock()
	}
}

// handshake reads a ConnectResponse: protocol version, timeout (ms),
// session id, password. A timeout of 0 or a session id of 0 means the
// session the client asked to resume has expired.
func (w *wireConn) handshake(hdr []byte) {
	w.shook.Store(true)
	if len(hdr) < 4+4+4+8+4 {
		return
	}
	timeout := time.Duration(int32(binary.BigEndian.Uint32(hdr[8:]))) * time.Millisecond
	id := int64(binary.BigEndian.Uint64(hdr[12:]))
	pwLen := int(int32(binary.BigEndian.Uint32(hdr[20:])))
	if timeout <= 0 || id == 0 || pwLen < 0 || 24+pwLen > len(hdr) {
		return
	}
	w.mu.Lock()
	at := w.connectAt
	w.mu.Unlock()
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.timeout, w.s.id, w.s.server = timeout, id, w.addr
	w.s.passwd = append(w.s.passwd[:0], hdr[24:24+pwLen]...)
	if at.After(w.s.heard) {
		w.s.heard = at
	}
}

// framer splits a byte stream into frames and calls on with the first
// headerBytes bytes of each (fewer for a shorter frame), length prefix
// included. first is true for the stream's first frame.
type framer struct {
	hdr   [headerBytes]byte
	have  int // bytes of hdr filled
	want  int // bytes of hdr wanted for the current frame; 0 before its length is known
	rest  int // bytes of the current frame after its header
	skip  int // bytes of the last frame still to pass
	first bool
}

func (f *framer) feed(p []byte, on func(hdr []byte, first bool)) {
	for len(p) > 0 {
		if f.skip > 0 {
			k := min(f.skip, len(p))
			f.skip -= k
			p = p[k:]
			continue
		}
		if f.want == 0 {
			k := min(4-f.have, len(p))
			copy(f.hdr[f.have:], p[:k])
			f.have += k
			p = p[k:]
			if f.have < 4 {
				return
			}
			size := int(binary.BigEndian.Uint32(f.hdr[:4]))
			f.want = 4 + min(size, headerBytes-4)
			f.rest = size - (f.want - 4)
		}
		k := min(f.want-f.have, len(p))
		copy(f.hdr[f.have:], p[:k])
		f.have += k
		p = p[k:]
		if f.have == f.want {
			on(f.hdr[:f.have], f.first)
			f.first = false
			f.have, f.want, f.skip = 0, 0, f.rest
		}
	}
}
