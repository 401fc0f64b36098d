// Package zkserver starts throw-away ZooKeeper servers on loopback for the
// lab's ZooKeeper tier, and is that tier's remote.Backend.
//
// Each server is a JVM running Debian's zookeeper package
// (/usr/share/java/zookeeper.jar, whose manifest puts its dependencies on the
// class path, and slf4j-simple.jar for its log) in the foreground as a child
// of the test process (package serverproc): ZooKeeperServerMain for the
// standalone deployment, QuorumPeerMain for an ensemble. Its configuration and
// data live in a directory on tmpfs that survives a node's Kill and Restart
// (RestartKeepsData: ZooKeeper writes every transaction to its log before it
// answers, so a restarted server has every znode, and zxids continue above
// the last one) and is removed by the cluster's Stop.
//
// The servers are tuned for tests, not production: a tick of TickTime
// (sessions are tracked and expired at that granularity, and an ensemble's
// members ping each other every half tick), session timeouts between
// MinSessionTimeout and MaxSessionTimeout (so that a test can ask for a
// session of a few hundred milliseconds and a stress run for seconds), an
// ensemble member that hears nothing from its leader for SyncLimit gives up
// on it and elects another, and no admin server. The four-letter commands
// ruok, srvr, mntr, stat and conf are enabled; the readiness probe is
// srvr's Mode line (ruok answers before the server serves), once conf has
// shown that the server on the port is the one started (its data
// directory).
//
// java must be on PATH and the jars in /usr/share/java;
// scripts/install-zookeeper.sh installs both. Where they are missing, Start
// and Version return an error wrapping remote.ErrNotInstalled that says so.
package zkserver

import (
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contend-lab/contend/internal/serverproc"
	"github.com/contend-lab/contend/remote"
)

// Install is the script that installs ZooKeeper and its Java runtime.
const Install = "scripts/install-zookeeper.sh"

// SkipEnv is the environment variable that, set to "1", turns a missing
// ZooKeeper into skipped tests.
const SkipEnv = "CONTEND_SKIP_ZOOKEEPER"

// The servers' timing (see the package doc).
const (
	TickTime          = 50 * time.Millisecond
	MinSessionTimeout = 2 * TickTime // ZooKeeper's own floor is 2 ticks
	MaxSessionTimeout = time.Minute
	// SyncLimit is how long a follower waits to hear from its leader (and
	// the leader from a follower) before it gives up on it: the longest an
	// ensemble goes without a leader when its leader stalls, before the
	// election.
	SyncLimit = 20 * TickTime
	// InitLimit bounds a member's initial sync with its leader.
	InitLimit = 40 * TickTime
)

// ErrNotInstalled is returned (wrapped) by Start and Version when java or
// the ZooKeeper jars cannot be found. It wraps remote.ErrNotInstalled.
var ErrNotInstalled = fmt.Errorf("zookeeper %w: run %s (or set %s=1 to skip the ZooKeeper tests)", remote.ErrNotInstalled, Install, SkipEnv)

// ErrStopped is returned by a Server's methods after Stop.
var ErrStopped = serverproc.ErrStopped

// The ZooKeeper deployments: one server, and an ensemble of three that
// replicates by ZooKeeper's atomic broadcast (Zab) and keeps serving with one
// member down.
var (
	Standalone = remote.Deployment{Name: "standalone", Topology: remote.Standalone, Servers: 1}
	Ensemble3  = remote.Deployment{Name: "ensemble3", Topology: remote.Replicated, Servers: 3}
)

// Backend is the ZooKeeper backend of the remote tier.
var Backend = remote.Backend{
	Name:             "zookeeper",
	Server:           "zookeeper (java)",
	Install:          Install,
	SkipEnv:          SkipEnv,
	Deployments:      []remote.Deployment{Standalone, Ensemble3},
	RestartKeepsData: true,
	// Sessions much under a second can drop on a machine loaded by -race:
	// the client pings every third of the timeout.
	ShortLease: 1500 * time.Millisecond,
	Version:    func() (string, error) { return Options{}.Version() },
	Start: func(ctx context.Context, d remote.Deployment) (remote.Cluster, error) {
		return Start(ctx, d, Options{})
	},
}

// Options says where Java and ZooKeeper are. The zero value is Debian's
// layout.
type Options struct {
	// Java is the java program: a path, or a name looked up on PATH. Empty
	// means "java".
	Java string
	// JarDir holds zookeeper.jar and slf4j-simple.jar. Empty means
	// /usr/share/java.
	JarDir string
	// StartTimeout bounds each server's start (and an ensemble's
	// election), per attempt. Zero means 30 s.
	StartTimeout time.Duration
}

func (o Options) java() (string, error) {
	name := o.Java
	if name == "" {
		name = "java"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("zkserver: %w (looked for %q: %v)", ErrNotInstalled, name, err)
	}
	return path, nil
}

func (o Options) jars() (zk, logger string, err error) {
	dir := o.JarDir
	if dir == "" {
		dir = "/usr/share/java"
	}
	zk, logger = filepath.Join(dir, "zookeeper.jar"), filepath.Join(dir, "slf4j-simple.jar")
	for _, f := range []string{zk, logger} {
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("zkserver: %w (%v)", ErrNotInstalled, err)
		}
	}
	return zk, logger, nil
}

// Version returns "zookeeper X.Y.Z", read from the Maven metadata inside
// zookeeper.jar (no JVM is started), or an error wrapping ErrNotInstalled
// when java or the jars are missing.
func (o Options) Version() (string, error) {
	if _, err := o.java(); err != nil {
		return "", err
	}
	jar, _, err := o.jars()
	if err != nil {
		return "", err
	}
	r, err := zip.OpenReader(jar)
	if err != nil {
		return "", fmt.Errorf("zkserver: reading %s: %w", jar, err)
	}
	defer r.Close()
	f, err := r.Open("META-INF/maven/org.apache.zookeeper/zookeeper/pom.properties")
	if err != nil {
		return "", fmt.Errorf("zkserver: %s has no Maven metadata: %w", jar, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "version="); ok {
			return "zookeeper " + v, nil
		}
	}
	return "", fmt.Errorf("zkserver: no version= line in %s's pom.properties", jar)
}

// portRetries is how many sets of ports Start tries when one it picked is
// taken before the server binds it.
const portRetries = 5

// Start starts deployment d (Standalone with 1 server, or Replicated with an
// odd number of servers, each knowing the others) on free loopback ports,
// with its data on tmpfs, and returns once every server serves: in an
// ensemble, once each is the leader or a follower. The servers of an
// ensemble start in parallel (none serves before a quorum has). If another
// process takes a port before a server binds it, Start retries with new
// ports. ctx bounds the whole start; the caller must Stop the cluster.
func Start(ctx context.Context, d remote.Deployment, opts Options) (*Cluster, error) {
	switch {
	case d.Servers < 1:
		return nil, fmt.Errorf("zkserver: deployment %q has %d servers", d.Name, d.Servers)
	case d.Topology == remote.Independent:
		return nil, fmt.Errorf("zkserver: deployment %q: independent ZooKeeper servers are not part of the lab", d.Name)
	case d.Topology == remote.Standalone && d.Servers != 1:
		return nil, fmt.Errorf("zkserver: standalone deployment %q with %d servers", d.Name, d.Servers)
	}
	java, err := opts.java()
	if err != nil {
		return nil, err
	}
	zkJar, loggerJar, err := opts.jars()
	if err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	var lastErr error
	for range portRetries {
		c, err := start(ctx, d, opts, java, zkJar+string(os.PathListSeparator)+loggerJar)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "Address already in use") || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// start makes one attempt at Start with newly picked ports.
func start(ctx context.Context, d remote.Deployment, opts Options, java, classpath string) (*Cluster, error) {
	ports, err := serverproc.FreePorts(3 * d.Servers)
	if err != nil {
		return nil, fmt.Errorf("zkserver: %w", err)
	}
	c := &Cluster{d: d, servers: make([]*Server, d.Servers)}
	for i := range c.servers {
		dir, err := dataDir()
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("zkserver: %w", err)
		}
		c.servers[i] = &Server{id: i + 1, dir: dir, port: ports[3*i], peerPort: ports[3*i+1], electionPort: ports[3*i+2]}
	}
	for _, s := range c.servers {
		if err := s.writeConfig(c.servers, d.Topology == remote.Replicated); err != nil {
			c.Stop()
			return nil, err
		}
	}
	main := "org.apache.zookeeper.server.ZooKeeperServerMain"
	if d.Topology == remote.Replicated {
		main = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	}
	errs := make([]error, len(c.servers))
	var wg sync.WaitGroup
	for i, s := range c.servers {
		wg.Go(func() {
			args := append(append([]string(nil), jvmArgs...), "-cp", classpath, main, s.config())
			p, err := serverproc.Start(ctx, serverproc.Spec{
				Name:         fmt.Sprintf("zookeeper %d of %d on %s", s.id, d.Servers, s.Addr()),
				Command:      func() *exec.Cmd { return exec.Command(java, args...) },
				Ready:        s.Serving,
				StartTimeout: opts.StartTimeout,
			})
			if err != nil {
				errs[i] = err
				return
			}
			s.setProcess(p)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("zkserver: starting %s: %w", d.Name, err)
	}
	return c, nil
}

// dirPrefix names the servers' directories on tmpfs.
const dirPrefix = "contend-zk-"

// dataDir makes a server's directory, with an "owner" file holding the
// test process's pid. A test binary that dies without stopping its servers
// (a panic on its timeout) leaves its directories behind; its servers die
// with it (serverproc's parent-death signal). So first it removes the
// directories whose owner no longer runs.
func dataDir() (string, error) {
	dir, err := serverproc.DataDir(dirPrefix)
	if err != nil {
		return "", err
	}
	sweep(filepath.Dir(dir))
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweep removes the server directories under base whose owner process is
// gone. A directory without an owner file yet is one being made: left alone.
func sweep(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && !alive(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// jvmArgs keep each JVM small and leave nothing behind when it is killed:
// no hsperfdata file in /tmp (-XX:-UsePerfData), and a serial collector in a
// 256 MiB heap (a test's znodes are tiny).
var jvmArgs = []string{"-Xmx256m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Djava.awt.headless=true"}

// Server is one ZooKeeper server: a remote.Node. Its methods are safe for
// concurrent use. After the cluster's Stop, every method but Addr returns
// an error.
type Server struct {
	id                           int // myid, 1-based
	dir                          string
	port, peerPort, electionPort int

	mu   sync.Mutex
	proc *serverproc.Process // nil until started
}

var _ remote.Node = (*Server)(nil)

func (s *Server) setProcess(p *serverproc.Process) {
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

func (s *Server) process() (*serverproc.Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil, ErrStopped
	}
	return s.proc, nil
}

func (s *Server) config() string  { return filepath.Join(s.dir, "zoo.cfg") }
func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// writeConfig writes s's zoo.cfg, and its myid file in an ensemble.
func (s *Server) writeConfig(all []*Server, ensemble bool) error {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%s\n", ms(TickTime))
	fmt.Fprintf(&b, "initLimit=%d\nsyncLimit=%d\n", InitLimit/TickTime, SyncLimit/TickTime)
	fmt.Fprintf(&b, "minSessionTimeout=%s\nmaxSessionTimeout=%s\n", ms(MinSessionTimeout), ms(MaxSessionTimeout))
	fmt.Fprintf(&b, "dataDir=%s\n", s.dataDir())
	fmt.Fprintf(&b, "clientPort=%d\nclientPortAddress=127.0.0.1\n", s.port)
	// Every client of a test comes from 127.0.0.1: no per-address limit
	// (the default is 60 connections).
	b.WriteString("maxClientCnxns=0\n")
	b.WriteString("admin.enableServer=false\n")
	b.WriteString("4lw.commands.whitelist=ruok,srvr,mntr,stat,conf\n")
	// Transaction logs are preallocated in 64 MiB steps by default; 1 MiB
	// is plenty for a test and keeps tmpfs small.
	b.WriteString("preAllocSize=1024\n")
	if ensemble {
		for _, o := range all {
			fmt.Fprintf(&b, "server.%d=127.0.0.1:%d:%d\n", o.id, o.peerPort, o.electionPort)
		}
	}
	if err := os.MkdirAll(s.dataDir(), 0o755); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	if ensemble {
		if err := os.WriteFile(filepath.Join(s.dataDir(), "myid"), []byte(strconv.Itoa(s.id)+"\n"), 0o644); err != nil {
			return fmt.Errorf("zkserver: %w", err)
		}
	}
	if err := os.WriteFile(s.config(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	return nil
}

// Addr returns the server's client address, "127.0.0.1:P". The port stays
// the same across Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Serving returns nil if the server answers srvr within ctx with a Mode
// line: it serves clients (standalone, or an ensemble member that leads or
// follows). A member without a quorum answers that it is not serving.
func (s *Server) Serving(ctx context.Context) error {
	_, err := s.Mode(ctx)
	return err
}

// Mode returns the server's mode (standalone, leader, follower), as the
// package-level Mode does, after checking with the four-letter command
// conf that the server answering on its port is this one (its data
// directory): between picking a free port and binding it, another process
// can take the port, and a test starting its own servers at the same time
// would then probe that one.
func (s *Server) Mode(ctx context.Context) (string, error) {
	conf, err := fourLetter(ctx, s.Addr(), "conf")
	if err != nil {
		return "", err
	}
	if !strings.Contains(conf, "dataDir="+s.dataDir()+"/") {
		return "", fmt.Errorf("zkserver: %s answers for another server (conf: %q)", s.Addr(), strings.TrimSpace(conf))
	}
	return Mode(ctx, s.Addr())
}

// Pause stops the server's JVM with SIGSTOP.
func (s *Server) Pause() error {
	p, err := s.process()
	if err != nil {
		return err
	}
	return p.Pause()
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error {
	p, err := s.process()
	if err != nil {
		return err
	}
	return p.Resume()
}

// Kill ends the server with SIGKILL and waits for it to exit; its data
// directory stays, for Restart.
func (s *Server) Kill() error {
	p, err := s.process()
	if err != nil {
		return err
	}
	return p.Kill()
}

// Restart kills the server if it runs and starts it again on the same ports
// with the same data, and returns once it serves (an ensemble member: once
// it leads or follows, which needs a quorum of the ensemble up).
func (s *Server) Restart(ctx context.Context) error {
	p, err := s.process()
	if err != nil {
		return err
	}
	return p.Restart(ctx)
}

// Output returns the last 64 KiB the server's current run logged.
func (s *Server) Output() string {
	p, err := s.process()
	if err != nil {
		return ""
	}
	return p.Output()
}

// stop kills the server and removes its directory.
func (s *Server) stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop()
	}
	_ = os.RemoveAll(s.dir)
}

// Mode sends the four-letter command srvr to addr and returns the value of
// its "Mode:" line (standalone, leader, follower, observer), or an error if
// the server does not answer within ctx or answers without one (it is not
// serving yet, or has no quorum).
func Mode(ctx context.Context, addr string) (string, error) {
	out, err := fourLetter(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(out) {
		if m, ok := strings.CutPrefix(line, "Mode:"); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("zkserver: srvr on %s: no Mode line in %q", addr, strings.TrimSpace(out))
}

// Mntr sends the four-letter command mntr to addr and returns its
// key-value lines (zk_watch_count, zk_znode_count, zk_server_state, ...).
func Mntr(ctx context.Context, addr string) (map[string]string, error) {
	out, err := fourLetter(ctx, addr, "mntr")
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok {
			kv[k] = v
		}
	}
	if len(kv) == 0 {
		return nil, fmt.Errorf("zkserver: mntr on %s: %q", addr, strings.TrimSpace(out))
	}
	return kv, nil
}

// fourLetter sends a four-letter command to addr and returns all it
// answers, within ctx.
func fourLetter(ctx context.Context, addr, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	out, err := io.ReadAll(io.LimitReader(c, 64<<10))
	return string(out), err
}

// Cluster is a started deployment: a remote.Cluster.
type Cluster struct {
	d       remote.Deployment
	servers []*Server
	once    sync.Once
}

var _ remote.Cluster = (*Cluster)(nil)

// Backend returns "zookeeper".
func (c *Cluster) Backend() string { return Backend.Name }

// Deployment returns what was started.
func (c *Cluster) Deployment() remote.Deployment { return c.d }

// Servers returns the servers, in myid order.
func (c *Cluster) Servers() []*Server { return c.servers }

// Nodes returns the servers as remote.Nodes, in myid order.
func (c *Cluster) Nodes() []remote.Node { return remote.NodesOf(c.servers) }

// Endpoints returns every server's client address, in node order.
func (c *Cluster) Endpoints() []string { return remote.EndpointsOf(c.servers) }

// Leader returns the index of the server whose srvr says "Mode: leader",
// asking them all at once within ctx, or an error wrapping
// remote.ErrNoLeader for a standalone server or while the ensemble has no
// leader.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	if c.d.Topology != remote.Replicated {
		return -1, fmt.Errorf("zkserver: %w: %s is a standalone server", remote.ErrNoLeader, c.d.Name)
	}
	modes, errs := remote.AskEach(c.servers, func(s *Server) (string, error) { return s.Mode(ctx) })
	for i, m := range modes {
		if m == "leader" {
			return i, nil
		}
	}
	return -1, fmt.Errorf("zkserver: %w among %v (modes %q; %v)", remote.ErrNoLeader, c.Endpoints(), modes, errors.Join(errs...))
}

// Stop kills every server (SIGKILL: nothing is worth a graceful shutdown)
// at once, waits for them to exit and removes their directories. It is
// idempotent.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		var wg sync.WaitGroup
		for _, s := range c.servers {
			if s != nil {
				wg.Go(s.stop)
			}
		}
		wg.Wait()
	})
}
