package zklab

import (
	"errors"
	"sync"
	"time"
)

// hosts is the client's zk.HostProvider: the servers in turn, as
// go-zookeeper's own provider does, but paced by time instead of by
// rounds. go-zookeeper's provider makes the client sleep a second before
// reconnecting to a server it was connected to whenever it has tried every
// server once since its last session began, which on a standalone server
// is every reconnection, even one the server asked for (a moved or expired
// session). Here the first attempt after an answer is immediate, every
// further round of attempts without one waits redialPause, and only
// when an attempt begun noServerAfter or more into a streak without an
// answer fails does the provider tell go-zookeeper that a round failed: it
// then fails the requests waiting to be sent, with zk.ErrNoServer, and
// sleeps a second. A server that refuses connections fails them after about
// noServerAfter; one that accepts and never answers, after two or three
// handshake timeouts.
//
// An attempt succeeds when the server answers its handshake (answered),
// with a session or with word that the session expired (go-zookeeper then
// asks for a new one at once), not when its dial does: a server that
// accepts connections and then drops them, or never answers the handshake,
// must fail the waiting requests as one that refuses connections does, or
// they would wait for ever.
type hosts struct {
	mu      sync.Mutex
	servers []string
	next    int
	tries   int       // attempts in the current streak: since the last answer or failed round
	since   time.Time // when the current streak began
	last    time.Time // when the latest attempt began

	// gate is held by ExpireSession while it closes the session from
	// another connection: the client, whose connection the server drops,
	// must not take the session back before it is closed.
	gate sync.Mutex
}

const (
	redialPause   = 50 * time.Millisecond
	noServerAfter = time.Second
)

func (h *hosts) Init(servers []string) error {
	if len(servers) == 0 {
		return errors.New("zklab: no servers")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = append([]string(nil), servers...)
	return nil
}

func (h *hosts) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

func (h *hosts) Next() (server string, retryStart bool) {
	h.gate.Lock()
	h.gate.Unlock() // an empty critical section: only waits for the gate
	h.mu.Lock()
	n := len(h.servers)
	server = h.servers[h.next%n]
	h.next++
	tries := h.tries
	h.tries++
	now := time.Now()
	if tries == 0 {
		h.since = now
	}
	// The round failed if the attempt that just failed began noServerAfter
	// into the streak: one that began earlier, and took long (a handshake
	// that was never answered), may have been made to a server that was
	// still starting, and the next attempt gets its chance first. A failed
	// round ends the streak (go-zookeeper sleeps a second after it).
	failed := tries > 0 && h.last.Sub(h.since) >= noServerAfter
	if failed {
		h.tries = 0
	}
	h.last = now
	h.mu.Unlock()
	switch {
	case tries == 0:
		return server, false // the first attempt of a streak: at once
	case failed:
		return server, true
	case tries%n == 0:
		time.Sleep(redialPause) // a round without an answer: pause before the next
	}
	return server, false
}

// Connected is go-zookeeper's report of a new or resumed session.
func (h *hosts) Connected() { h.answered() }

// answered is the client's connection's report that the server answered
// its handshake: the server is there, and the next attempt is at once.
func (h *hosts) answered() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries = 0
}
