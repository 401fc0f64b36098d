// Package etcdserver starts throw-away etcd members on loopback for the
// lab's etcd tier, and is that tier's remote.Backend.
//
// Every member runs in the foreground as a child of the test process
// (package serverproc), with its client and peer URLs on free 127.0.0.1
// ports and its data directory on tmpfs (/dev/shm). etcd 3.4 has no
// --unsafe-no-fsync; tmpfs makes its fsyncs cheap instead. A member's data
// directory survives its Restart (RestartKeepsData: it rejoins with its log
// and its leases), and is removed by the cluster's Stop.
//
// The probes speak plain HTTP/JSON to the members' client URLs (/health and
// the gRPC gateway's /v3/maintenance/status), so this package does not link
// the etcd Go client; the implementations (remote/etcdlab, remote/etcdref)
// do.
//
// etcd must be on PATH; scripts/install-etcd.sh installs it. Where it is
// missing, Start returns an error wrapping remote.ErrNotInstalled that says
// so.
package etcdserver

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contend-lab/contend/internal/serverproc"
	"github.com/contend-lab/contend/remote"
)

// Binary is the program Start runs when Options.Binary is empty.
const Binary = "etcd"

// SkipEnv is the environment variable that, set to "1", turns a missing
// etcd into skipped tests.
const SkipEnv = "CONTEND_SKIP_ETCD"

// Install is the script that installs etcd.
const Install = "scripts/install-etcd.sh"

// ErrNotInstalled is returned (wrapped) by Start and Version when the etcd
// binary cannot be found. It wraps remote.ErrNotInstalled.
var ErrNotInstalled = fmt.Errorf("etcd %w: run %s (or set %s=1 to skip the etcd tests)", remote.ErrNotInstalled, Install, SkipEnv)

// ErrStopped is returned by a Member's methods after the cluster's Stop.
var ErrStopped = serverproc.ErrStopped

// The etcd deployments: one member, and a cluster of three that keeps
// serving with one member down.
var (
	Single   = remote.Deployment{Name: "single", Topology: remote.Standalone, Servers: 1}
	Cluster3 = remote.Deployment{Name: "cluster3", Topology: remote.Replicated, Servers: 3}
)

// Raft timing of every member. etcd's defaults (100 ms, 1 s) are sized for
// networks between machines; on loopback a 50 ms heartbeat and a 500 ms
// election timeout halve the time a cluster is without a leader after the
// leader dies, and still leave ten missed heartbeats before a follower
// campaigns, which a member starved of CPU by a -race test run does not
// reach. The election timeout also sets etcd's shortest lease: 1.5 election
// timeouts rounded up to a second, so 1 s here (2 s with the defaults).
const (
	HeartbeatInterval = 50 * time.Millisecond
	ElectionTimeout   = 500 * time.Millisecond
)

// ShortLease is the lease the fault scenarios give etcd locks: etcd
// leases are whole seconds, and one of 2 s, refreshed every third of it,
// still has a refresh get through during a leader election with the Raft
// timing above (TestClusterLeaderKillAndPausedStop logs how long one
// takes), so a live client keeps its lease across one.
const ShortLease = 2 * time.Second

// Backend is the etcd backend of the remote tier.
var Backend = remote.Backend{
	Name:             "etcd",
	Server:           Binary,
	Install:          Install,
	SkipEnv:          SkipEnv,
	Deployments:      []remote.Deployment{Single, Cluster3},
	RestartKeepsData: true,
	ShortLease:       ShortLease,
	Version:          func() (string, error) { return Version(Options{}) },
	Start: func(ctx context.Context, d remote.Deployment) (remote.Cluster, error) {
		return Start(ctx, d, Options{})
	},
}

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Binary is the etcd to run: a path, or a name looked up on PATH.
	// Empty means Binary ("etcd").
	Binary string
	// StartTimeout bounds each member's start (and Restart) until it
	// reports healthy. Zero means 10 s.
	StartTimeout time.Duration
}

func (o Options) lookPath() (string, error) {
	bin := o.Binary
	if bin == "" {
		bin = Binary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("etcdserver: %w (looked for %q: %v)", ErrNotInstalled, bin, err)
	}
	return path, nil
}

// Version returns the installed etcd's version, "etcd 3.4.23", or an error
// wrapping ErrNotInstalled.
func Version(o Options) (string, error) {
	path, err := o.lookPath()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("etcdserver: %s --version: %w", path, err)
	}
	// "etcd Version: 3.4.23\nGit SHA: ..."
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "etcd Version:"); ok {
			return "etcd " + strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("etcdserver: %s --version printed no version: %q", path, out)
}

// bindRetries is how many sets of ports Start tries when one it picked is
// taken between picking it and a member binding it.
const bindRetries = 5

// Start starts d's members on free loopback ports, all at once (a member of
// a replicated cluster is healthy only once a quorum has elected a leader),
// and returns once every member reports healthy on /health. If a port is
// taken before a member binds it, Start retries with new ports (up to 5
// times). ctx bounds the whole start. The caller must Stop the cluster.
func Start(ctx context.Context, d remote.Deployment, o Options) (*Cluster, error) {
	if d.Servers < 1 || (d.Topology == remote.Standalone && d.Servers != 1) {
		return nil, fmt.Errorf("etcdserver: deployment %q: %d servers with topology %v", d.Name, d.Servers, d.Topology)
	}
	if d.Topology == remote.Independent {
		return nil, fmt.Errorf("etcdserver: deployment %q: etcd members always replicate; there is no independent topology", d.Name)
	}
	path, err := o.lookPath()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range bindRetries {
		c, err := start(ctx, d, o, path)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, d remote.Deployment, o Options, path string) (*Cluster, error) {
	ports, err := serverproc.FreePorts(2 * d.Servers)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: %w", err)
	}
	c := &Cluster{d: d}
	var initial []string
	for i := range d.Servers {
		dir, err := serverproc.DataDir("contend-etcd-")
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("etcdserver: data directory: %w", err)
		}
		m := &Member{name: fmt.Sprintf("m%d", i), clientPort: ports[2*i], peerPort: ports[2*i+1], dataDir: dir}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL())
	}
	// A token of its own keeps members of two clusters that were given the
	// same ports one after the other from talking to each other.
	token := "contend-" + strings.ToLower(crand.Text()[:12])
	// One member that fails to start (a port taken) dooms the others, which
	// would wait for a quorum until their StartTimeout: cancel them.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, d.Servers)
	var wg sync.WaitGroup
	for i, m := range c.members {
		args := []string{
			"--name", m.name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL(),
			"--advertise-client-urls", m.clientURL(),
			"--listen-peer-urls", m.peerURL(),
			"--initial-advertise-peer-urls", m.peerURL(),
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", strconv.Itoa(int(HeartbeatInterval / time.Millisecond)),
			"--election-timeout", strconv.Itoa(int(ElectionTimeout / time.Millisecond)),
			"--logger", "zap",
			"--log-level", "warn",
		}
		wg.Go(func() {
			p, err := serverproc.Start(sctx, serverproc.Spec{
				Name:         fmt.Sprintf("%s member %s on %s", path, m.name, m.Addr()),
				Command:      func() *exec.Cmd { return exec.Command(path, args...) },
				Ready:        m.Serving,
				StartTimeout: o.StartTimeout,
			})
			if err != nil {
				cancel()
				errs[i] = err
				return
			}
			m.setProcess(p)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("etcdserver: starting %s (%d members): %w", d.Name, d.Servers, err)
	}
	// The member ids do not change across restarts (they live in the data
	// directory); Leader maps the cluster's answer to a node with them.
	for _, m := range c.members {
		st, err := m.status(ctx)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("etcdserver: status of %s: %w", m.Addr(), err)
		}
		m.id = st.Header.MemberID
	}
	return c, nil
}

// Member is one etcd server of a Cluster: a remote.Node. Its methods are
// safe for concurrent use. After the cluster's Stop every method but Addr
// returns ErrStopped.
type Member struct {
	name                 string
	clientPort, peerPort int
	dataDir              string
	id                   uint64 // set by start, read-only afterwards

	mu sync.Mutex
	p  *serverproc.Process // nil until started, or if it never started
}

var _ remote.Node = (*Member)(nil)

func (m *Member) setProcess(p *serverproc.Process) {
	m.mu.Lock()
	m.p = p
	m.mu.Unlock()
}

func (m *Member) proc() (*serverproc.Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return nil, ErrStopped
	}
	return m.p, nil
}

// Addr returns the member's client address, "127.0.0.1:P". It stays the
// same across Restart.
func (m *Member) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.clientPort)) }

// Name returns the member's name in the cluster ("m0", "m1", ...).
func (m *Member) Name() string { return m.name }

// DataDir returns the member's data directory.
func (m *Member) DataDir() string { return m.dataDir }

func (m *Member) clientURL() string { return "http://" + m.Addr() }
func (m *Member) peerURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(m.peerPort))
}

// Pause stops the member with SIGSTOP.
func (m *Member) Pause() error { return m.do((*serverproc.Process).Pause) }

// Resume continues a paused member with SIGCONT.
func (m *Member) Resume() error { return m.do((*serverproc.Process).Resume) }

// Kill ends the member with SIGKILL and waits for it to exit; its data
// directory stays for Restart.
func (m *Member) Kill() error { return m.do((*serverproc.Process).Kill) }

func (m *Member) do(f func(*serverproc.Process) error) error {
	p, err := m.proc()
	if err != nil {
		return err
	}
	return f(p)
}

// Restart kills the member if it runs and starts it again on the same ports
// with its data directory, and returns once it reports healthy: in a
// cluster, once it has rejoined and a quorum serves.
func (m *Member) Restart(ctx context.Context) error {
	p, err := m.proc()
	if err != nil {
		return err
	}
	return p.Restart(ctx)
}

func (m *Member) stop() {
	if p, err := m.proc(); err == nil {
		p.Stop()
	}
}

// probeClient sends the probes. Its connections are not kept: an idle
// connection to a member that is paused or killed later is worth nothing.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Serving returns nil if the member answers GET /health with
// {"health":"true"} within ctx. etcd 3.4 reports healthy only when the
// member has a leader and a quorum read through raft succeeds.
func (m *Member) Serving(ctx context.Context) error {
	var h struct {
		Health string `json:"health"`
	}
	if err := m.call(ctx, "/health", nil, &h); err != nil {
		return err
	}
	if h.Health != "true" {
		return fmt.Errorf("etcdserver: %s reports health %q", m.Addr(), h.Health)
	}
	return nil
}

// status is the part of etcd's StatusResponse that Leader reads. The gRPC
// gateway prints 64-bit integers as JSON strings.
type status struct {
	Header struct {
		MemberID uint64 `json:"member_id,string"`
	} `json:"header"`
	Leader uint64 `json:"leader,string"`
}

func (m *Member) status(ctx context.Context) (status, error) {
	var st status
	err := m.call(ctx, "/v3/maintenance/status", struct{}{}, &st)
	return st, err
}

// call sends in as JSON to path on the member (GET when in is nil, POST
// otherwise) and decodes the answer into out.
func (m *Member) call(ctx context.Context, path string, in, out any) error {
	method, body := http.MethodGet, io.Reader(nil)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		method, body = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.clientURL()+path, body)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcdserver: %s %s on %s: %s: %s", method, path, m.Addr(), resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("etcdserver: %s %s on %s: %w (%q)", method, path, m.Addr(), err, b)
	}
	return nil
}

// Cluster is a started etcd deployment: a remote.Cluster. Its methods are
// safe for concurrent use.
type Cluster struct {
	d       remote.Deployment
	members []*Member

	stopOnce sync.Once
}

var _ remote.Cluster = (*Cluster)(nil)

// Backend returns "etcd".
func (c *Cluster) Backend() string { return Backend.Name }

// Deployment returns what was started.
func (c *Cluster) Deployment() remote.Deployment { return c.d }

// Members returns the members, in node order.
func (c *Cluster) Members() []*Member { return c.members }

// Nodes returns the members as remote.Nodes, in a fixed order.
func (c *Cluster) Nodes() []remote.Node { return remote.NodesOf(c.members) }

// Endpoints returns every member's client address, in node order.
func (c *Cluster) Endpoints() []string { return remote.EndpointsOf(c.members) }

// Leader asks every member, concurrently and within ctx, which member
// leads, and returns the node index of the member that names itself and is
// named by a quorum of the deployment, itself included. A member that is
// paused or killed does not answer, so it is not returned even while the
// others have not yet noticed; a deposed leader that has not yet heard of
// its successor is outvoted. It
// returns an error wrapping remote.ErrNoLeader for the single deployment,
// and while no member has a quorum's votes.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	if c.d.Topology != remote.Replicated {
		return -1, fmt.Errorf("etcdserver: %w: deployment %q is a single member", remote.ErrNoLeader, c.d.Name)
	}
	votes, errs := remote.AskEach(c.members, func(m *Member) (uint64, error) {
		st, err := m.status(ctx)
		return st.Leader, err
	})
	count := map[uint64]int{}
	for _, v := range votes {
		if v != 0 {
			count[v]++
		}
	}
	for i, m := range c.members {
		if errs[i] == nil && votes[i] == m.id && count[m.id] >= c.d.Quorum() {
			return i, nil
		}
	}
	return -1, fmt.Errorf("etcdserver: %w: no member is named leader by %d of %d (answers %v; errors: %v)",
		remote.ErrNoLeader, c.d.Quorum(), len(c.members), votes, errors.Join(errs...))
}

// Stop kills every member with SIGKILL (a paused one too), waits for them
// to exit and removes their data directories. It is idempotent. It never
// waits on a graceful shutdown: the last member of a cluster can take
// seconds to leave on SIGTERM.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		for _, m := range c.members {
			m.stop()
		}
		for _, m := range c.members {
			_ = os.RemoveAll(m.dataDir)
		}
	})
}
