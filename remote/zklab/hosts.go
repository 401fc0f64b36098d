package zklab

import (
	"errors"
	"sync"
	"time"
)

// hosts is the client's zk.HostProvider: the servers in turn, as
// go-zookeeper's own provider does, but paced by dial failures instead of
// by sessions. go-zookeeper's provider makes the client sleep a second
// before reconnecting to a server it was connected to whenever it has
// tried every server once since its last session began, which on a
// standalone server is every reconnection, even one the server asked for
// (a moved or expired session). Here a reconnection after a successful
// dial is immediate, and failed dials are retried every redialPause,
// telling go-zookeeper that a round failed (it then fails the requests
// waiting to be sent, with zk.ErrNoServer, and sleeps a second) only once
// every failRounds rounds.
type hosts struct {
	mu      sync.Mutex
	servers []string
	next    int
	failed  int // dials failed in a row

	// gate is held by ExpireSession while it closes the session from
	// another connection: the client, whose connection the server drops,
	// must not take the session back before it is closed.
	gate sync.Mutex
}

const (
	redialPause = 50 * time.Millisecond
	failRounds  = 20
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
	failed, n := h.failed, len(h.servers)
	server = h.servers[h.next%n]
	h.next++
	h.mu.Unlock()
	if failed == 0 {
		return server, false
	}
	if failed%(n*failRounds) == 0 {
		return server, true
	}
	if failed%n == 0 {
		time.Sleep(redialPause) // a round failed: pause before the next
	}
	return server, false
}

// Connected is go-zookeeper's report of a new or resumed session.
func (h *hosts) Connected() {}

// dialed records the outcome of a dial.
func (h *hosts) dialed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.failed++
	} else {
		h.failed = 0
	}
}
