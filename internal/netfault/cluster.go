package netfault

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/contend-lab/contend/remote"
)

// Proxies is one client's proxies to the servers of a cluster, in node
// order: Proxies[i] forwards to Nodes()[i]. The methods act on every proxy;
// index it to fault the path to one server. A nil Proxies does nothing.
type Proxies []*Proxy

// Partition cuts the client off from every server; see [Proxy.Partition].
func (ps Proxies) Partition() {
	for _, p := range ps {
		p.Partition()
	}
}

// Heal ends a Partition of every path; see [Proxy.Heal].
func (ps Proxies) Heal() {
	for _, p := range ps {
		p.Heal()
	}
}

// SetLatency sets the latency of every path; see [Proxy.SetLatency].
func (ps Proxies) SetLatency(toServer, toClient time.Duration) error {
	for _, p := range ps {
		if err := p.SetLatency(toServer, toClient); err != nil {
			return err
		}
	}
	return nil
}

// ResetConnections resets every connection of every path and returns how
// many; see [Proxy.ResetConnections].
func (ps Proxies) ResetConnections() int {
	n := 0
	for _, p := range ps {
		n += p.ResetConnections()
	}
	return n
}

// Close closes every proxy; see [Proxy.Close].
func (ps Proxies) Close() error {
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// Wrap starts one proxy per server of c and returns a view of c for one
// client: its Endpoints and its Nodes' Addr are the proxies' addresses, so a
// client built from the view reaches the servers only through them. Every
// other method acts on c itself: node faults (Pause, Kill, Restart...) hit
// the real servers, Serving probes them directly and Leader asks them. The
// view's Stop closes its proxies and leaves the servers running: they belong
// to c, whose owner stops them.
//
// Call Wrap once per client that needs a path of its own. A client that
// discovers servers by itself must not be allowed to (an etcd client with
// AutoSyncInterval set would find the real addresses).
func Wrap(c remote.Cluster) (remote.Cluster, Proxies, error) {
	if c == nil {
		return nil, nil, errors.New("netfault: Wrap of a nil cluster")
	}
	nodes := c.Nodes()
	v := &view{Cluster: c, nodes: make([]remote.Node, len(nodes))}
	for i, n := range nodes {
		p, err := Listen(n.Addr())
		if err != nil {
			_ = v.ps.Close()
			return nil, nil, fmt.Errorf("netfault: proxy to %s node %d: %w", c.Backend(), i, err)
		}
		v.ps = append(v.ps, p)
		v.nodes[i] = node{Node: n, addr: p.Addr()}
	}
	return v, v.ps, nil
}

// view is a Cluster whose client addresses are proxies.
type view struct {
	remote.Cluster
	nodes []remote.Node
	ps    Proxies
}

func (v *view) Nodes() []remote.Node { return slices.Clone(v.nodes) }

func (v *view) Endpoints() []string { return remote.EndpointsOf(v.ps) }

func (v *view) Stop() { _ = v.ps.Close() }

// node is a server reached through a proxy at addr.
type node struct {
	remote.Node
	addr string
}

func (n node) Addr() string { return n.addr }
