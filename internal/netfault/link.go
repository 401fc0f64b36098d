package netfault

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// chunkSize is the size of a read buffer, io.Copy's.
	chunkSize = 32 << 10
	// While latency is set, the chunks that wait it out share buffers: a
	// read goes into what is left of the current one, down to minRead.
	// delayBuffers bounds the buffers, so a direction holds at most
	// delayBuffers × chunkSize bytes, and delayChunks the chunks; a
	// sender past either waits on TCP's flow control, and its bytes are
	// delayed the longer, as behind a full queue.
	minRead      = 2 << 10
	delayBuffers = 8
	delayChunks  = 256
)

// link is one client connection and, once dialled, its connection to the
// target.
type link struct {
	p      *Proxy
	client *net.TCPConn
	done   chan struct{} // closed by close
	open   atomic.Int32  // directions still forwarding; the link closes at 0

	mu     sync.Mutex
	server *net.TCPConn
	closed bool
}

// serve connects l to the target, once the path is not cut, and forwards
// both directions.
func (l *link) serve() {
	p := l.p
	defer p.wg.Done()
	if p.refuse.Load() {
		l.close(fault)
		return
	}
	if !p.pass(l) {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		// The client sees a reset where a direct dial would be refused.
		l.close(reset)
		return
	}
	s := c.(*net.TCPConn)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = s.Close()
		return
	}
	l.server = s
	l.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		l.forward(down, s, l.client)
	}()
	l.forward(up, l.client, s)
}

// forward copies from src to dst, in direction dir, through the proxy's
// faults, until src ends or l closes. An EOF from src becomes a half-close
// of dst, any other error a reset of both ends.
func (l *link) forward(dir direction, src, dst *net.TCPConn) {
	p := l.p
	arm := &p.resetReq
	if dir == down {
		arm = &p.resetResp
	}
	buf, off := make([]byte, chunkSize), 0 // buf[:off] waits in the delay line
	var q *delayLine
	for {
		n, err := src.Read(buf[off:])
		lat := time.Duration(p.latency[dir].Load())
		var due time.Time
		if lat > 0 {
			due = time.Now().Add(lat) // arrival, before a cut holds it
		}
		if !p.pass(l) {
			return
		}
		if n > 0 && arm.Load() && arm.CompareAndSwap(true, false) {
			l.close(fault)
			return
		}
		if n > 0 {
			// Writing here while the delay line still holds bytes would
			// overtake them.
			if lat == 0 && (q == nil || q.pending.Load() == 0) {
				if _, err := dst.Write(buf[off : off+n]); err != nil {
					l.close(reset)
					return
				}
				p.bytes[dir].Add(int64(n))
				off = 0 // nothing queued refers to buf
			} else {
				if q == nil {
					q = l.startDelay(dir, dst)
				}
				c := chunk{b: buf[off : off+n], due: due}
				if off += n; len(buf)-off < minRead {
					c.recycle = buf
				}
				if !q.push(c) {
					return
				}
				if c.recycle != nil {
					if buf, off = q.buffer(), 0; buf == nil {
						return
					}
				}
			}
		}
		if err != nil {
			switch {
			case !errors.Is(err, io.EOF):
				l.close(reset)
			case q != nil:
				q.push(chunk{due: due})
			default:
				_ = dst.CloseWrite()
				l.finish()
			}
			return
		}
	}
}

// ending is how a link is closed.
type ending int

const (
	graceful ending = iota // FIN to both ends
	reset                  // RST to both ends, passing on an error
	fault                  // RST injected by a fault, counted in Stats.Resets
)

// close closes both ends of l as how says, and reports whether this call
// closed it.
func (l *link) close(how ending) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	s := l.server
	l.mu.Unlock()
	if how == fault {
		l.p.resets.Add(1) // before the client can see the RST
	}
	for _, c := range [2]*net.TCPConn{l.client, s} {
		if c == nil {
			continue
		}
		if how != graceful {
			_ = c.SetLinger(0)
		}
		_ = c.Close()
	}
	close(l.done)
	l.p.mu.Lock()
	delete(l.p.links, l)
	l.p.mu.Unlock()
	return true
}

// finish marks one direction as done, and closes l once both are.
func (l *link) finish() {
	if l.open.Add(-1) == 0 {
		l.close(graceful)
	}
}

// delayLine delivers the chunks of one direction of a link when they are
// due, in order, on a goroutine of its own, so that one chunk's delay does
// not hold up reading the next: pipelined requests are each delayed once.
type delayLine struct {
	l       *link
	dir     direction
	dst     *net.TCPConn
	chunks  chan chunk
	free    chan []byte
	made    int          // buffers allocated; only the reader touches it
	pending atomic.Int32 // chunks pushed and not yet written
}

type chunk struct {
	b       []byte // nil: src's EOF
	due     time.Time
	recycle []byte // the buffer b ends, to reuse once b is written
}

func (l *link) startDelay(dir direction, dst *net.TCPConn) *delayLine {
	q := &delayLine{
		l:      l,
		dir:    dir,
		dst:    dst,
		chunks: make(chan chunk, delayChunks),
		free:   make(chan []byte, delayBuffers), // never full: see buffer
		made:   1,                               // the reader's own
	}
	l.p.wg.Add(1)
	go q.run()
	return q
}

// push queues c, and reports false once the link is closed.
func (q *delayLine) push(c chunk) bool {
	q.pending.Add(1)
	select {
	case q.chunks <- c:
		return true
	case <-q.l.done:
		return false
	}
}

// buffer returns an empty buffer for the reader, or nil once the link is
// closed.
func (q *delayLine) buffer() []byte {
	select {
	case b := <-q.free:
		return b
	default:
	}
	if q.made < delayBuffers {
		q.made++
		return make([]byte, chunkSize)
	}
	select {
	case b := <-q.free:
		return b
	case <-q.l.done:
		return nil
	}
}

// run writes the queued chunks when they are due, until EOF or the link
// closes.
func (q *delayLine) run() {
	l, p := q.l, q.l.p
	defer p.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var c chunk
		select {
		case c = <-q.chunks:
		case <-l.done:
			return
		}
		if wait := time.Until(c.due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-l.done:
				return
			}
		}
		if !p.pass(l) {
			return
		}
		if c.b == nil {
			_ = q.dst.CloseWrite()
			l.finish()
			return
		}
		if _, err := q.dst.Write(c.b); err != nil {
			l.close(reset)
			return
		}
		p.bytes[q.dir].Add(int64(len(c.b)))
		if c.recycle != nil {
			q.free <- c.recycle
		}
		q.pending.Add(-1)
	}
}
