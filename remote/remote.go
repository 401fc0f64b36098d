// Package remote is the seam between the lab and the servers its remote
// tier runs on. A [Backend] says how to find, install, start and fail one
// kind of server (Redis, ZooKeeper, etcd); a [Cluster] is one started
// [Deployment] of it, on free loopback ports with its data on tmpfs, and its
// [Node]s are the fault hooks the harness's scenarios use: pause and resume
// a server, kill and restart it, and, in a replicated cluster, find the
// leader.
//
// The harness, the registry and the report see backends only through this
// package: adding a backend is its client package (remote/<name>lab and
// friends), its server package (internal/<name>server, which returns a
// Backend), its registry entries and its install script. Nothing here
// imports a client library or package testing.
package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Topology is how the servers of a deployment relate to each other.
type Topology int

const (
	// Standalone is one server.
	Standalone Topology = iota
	// Independent is several servers that know nothing of each other; a
	// client that wants agreement between them runs its own quorum
	// protocol (Redlock).
	Independent
	// Replicated is several servers that replicate one state by consensus
	// and elect a leader (a ZooKeeper ensemble, an etcd cluster): a client
	// may talk to any of them and sees one service.
	Replicated
)

// String returns the topology's name as the report prints it.
func (t Topology) String() string {
	switch t {
	case Standalone:
		return "standalone"
	case Independent:
		return "independent"
	case Replicated:
		return "replicated"
	}
	return fmt.Sprintf("Topology(%d)", int(t))
}

// Deployment is one shape of a backend's servers that implementations run
// on.
type Deployment struct {
	// Name identifies the deployment within its backend, in benchmark
	// names and the report: lower case, no spaces, no trailing -digits
	// (benchfmt reads those as GOMAXPROCS), e.g. "single", "ensemble3".
	Name     string
	Topology Topology
	Servers  int
}

// Quorum returns how many of the deployment's servers must be up for it to
// serve: a majority for Independent and Replicated, 1 for Standalone.
func (d Deployment) Quorum() int {
	if d.Topology == Standalone {
		return 1
	}
	return d.Servers/2 + 1
}

// Backend is one kind of coordination server. It is a value, not an
// interface, so that a new backend is one literal in its server package.
type Backend struct {
	// Name identifies the backend in registry entries, benchmark names and
	// the report: "redis", "zookeeper", "etcd".
	Name string
	// Server is the program the backend runs, for messages ("redis-server").
	Server string
	// Install is the script, relative to the repository's root, that
	// installs the server from Debian's packages ("scripts/install-redis.sh").
	Install string
	// SkipEnv names the environment variable that, set to "1", turns a
	// missing server into skipped tests instead of failed ones. CI never
	// sets it.
	SkipEnv string
	// Deployments lists the shapes the backend can start, the first being
	// the one an implementation that names none runs on.
	Deployments []Deployment
	// RestartKeepsData reports whether a Node's Restart brings its data
	// back (a server that persists to its tmpfs data directory) or starts
	// it empty (Redis here runs without persistence).
	RestartKeepsData bool
	// ShortLease is the lease (TTL, session timeout) the fault scenarios
	// give: short, so that expiry is part of a test, but as long as the
	// backend needs to keep a live client's lease alive on a loaded
	// machine (an etcd lease is whole seconds; a ZooKeeper session is
	// kept by heartbeats every third of its timeout).
	ShortLease time.Duration
	// Version returns the installed server's version, or an error wrapping
	// ErrNotInstalled that names the install script.
	Version func() (string, error)
	// Start starts d on free loopback ports with its data on tmpfs and
	// returns once every server serves (a replicated cluster has a
	// leader). ctx bounds the start. The caller must Stop the cluster.
	Start func(ctx context.Context, d Deployment) (Cluster, error)
}

// Deployment returns the backend's deployment named name.
func (b Backend) Deployment(name string) (Deployment, bool) {
	for _, d := range b.Deployments {
		if d.Name == name {
			return d, true
		}
	}
	return Deployment{}, false
}

// Skipped reports whether the environment asks to skip this backend's tests
// when its server is missing.
func (b Backend) Skipped() bool { return b.SkipEnv != "" && os.Getenv(b.SkipEnv) == "1" }

// ErrNotInstalled is returned (wrapped) by Backend.Version and Start when
// the server program cannot be found.
var ErrNotInstalled = errors.New("server is not installed")

// ErrNoLeader is returned (wrapped) by Cluster.Leader for a deployment that
// has no leader (Standalone or Independent), or while a replicated one has
// none.
var ErrNoLeader = errors.New("no leader")

// Cluster is one started deployment. Its methods are safe for concurrent
// use.
type Cluster interface {
	// Backend returns the name of the backend that started it.
	Backend() string
	// Deployment returns what was started.
	Deployment() Deployment
	// Nodes returns the servers, in a fixed order.
	Nodes() []Node
	// Endpoints returns every server's client address, "127.0.0.1:port",
	// in node order. The ports stay the same across Restart.
	Endpoints() []string
	// Leader returns the index in Nodes of the server that leads a
	// Replicated cluster now, or an error wrapping ErrNoLeader.
	Leader(ctx context.Context) (int, error)
	// Stop kills every server, waits for them to exit (bounded: a server
	// slow to exit is killed with SIGKILL) and removes their data. It is
	// idempotent and safe to call after any failure.
	Stop()
}

// Node is one server of a cluster, and the faults the harness injects into
// it. After the cluster's Stop every method but Addr returns an error.
type Node interface {
	// Addr returns the server's client address, "127.0.0.1:port".
	Addr() string
	// Pause stops the server's process with SIGSTOP: connections stay
	// open and the kernel still accepts and buffers, but nothing is
	// answered until Resume. Pausing a paused server does nothing.
	Pause() error
	// Resume continues a paused server with SIGCONT.
	Resume() error
	// Kill ends the server with SIGKILL and waits for it to exit. Killing
	// a killed server does nothing.
	Kill() error
	// Restart kills the server if it runs and starts it again on the same
	// ports, with its data if the backend keeps data (RestartKeepsData),
	// and returns once it serves again (in a replicated cluster: once it
	// has rejoined).
	Restart(ctx context.Context) error
	// Serving returns nil if the server answers its health probe within
	// ctx: for a replicated cluster, that it is a leader or a follower.
	Serving(ctx context.Context) error
}

// RoundTripCounter is implemented by remote implementations that count the
// requests they send to their servers; benchmarks report it per operation.
type RoundTripCounter interface {
	// RoundTrips returns how many requests the implementation has sent so
	// far, failed ones included.
	RoundTrips() int64
}

// WaitServing polls every node of c until each answers Serving, or ctx is
// done. It returns how long that took.
func WaitServing(ctx context.Context, c Cluster) (time.Duration, error) {
	start := time.Now()
	for _, n := range c.Nodes() {
		for {
			pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
			err := n.Serving(pctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return time.Since(start), fmt.Errorf("remote: %s on %s not serving: %w (last: %v)", c.Backend(), n.Addr(), ctx.Err(), err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return time.Since(start), nil
}

// The helpers below are what every server package's Cluster does the same
// way with its own server type.

// NodesOf returns servers as Nodes, in their order: a Cluster's Nodes.
func NodesOf[N Node](servers []N) []Node {
	nodes := make([]Node, len(servers))
	for i, s := range servers {
		nodes[i] = s
	}
	return nodes
}

// EndpointsOf returns each server's Addr, in order: a Cluster's Endpoints.
func EndpointsOf[N interface{ Addr() string }](servers []N) []string {
	eps := make([]string, len(servers))
	for i, s := range servers {
		eps[i] = s.Addr()
	}
	return eps
}

// AskEach calls ask for every server at once, and returns once all have
// answered: the answers and the errors, in server order. Clusters ask so
// which server leads, each question bounded by the caller's context.
func AskEach[N, T any](servers []N, ask func(N) (T, error)) ([]T, []error) {
	answers := make([]T, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { answers[i], errs[i] = ask(s) })
	}
	wg.Wait()
	return answers, errs
}
