// Package redisserver starts throw-away redis-server processes on loopback
// for the lab's Redis tier, and is that tier's remote.Backend.
//
// Every server runs without persistence (--save "" --appendonly no), bound to
// 127.0.0.1 on a free port, in the foreground as a child of the test process
// (package serverproc). A restart therefore loses every key: that is the
// point of the kill and restart scenarios, not an accident.
//
// redis-server must be on PATH; scripts/install-redis.sh installs it. Where it
// is missing, Start returns an error wrapping remote.ErrNotInstalled that says
// so.
package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/contend-lab/contend/internal/serverproc"
	"github.com/contend-lab/contend/remote"
)

// Binary is the program Start runs when Options.Binary is empty.
const Binary = "redis-server"

// SkipEnv is the environment variable that, set to "1", turns a missing
// redis-server into skipped tests.
const SkipEnv = "CONTEND_SKIP_REDIS"

// Install is the script that installs redis-server.
const Install = "scripts/install-redis.sh"

// ErrNotInstalled is returned (wrapped) by Start when the redis-server binary
// cannot be found. It wraps remote.ErrNotInstalled.
var ErrNotInstalled = fmt.Errorf("redis-server %w: run %s (or set %s=1 to skip the Redis tests)", remote.ErrNotInstalled, Install, SkipEnv)

// ErrStopped is returned by a Server's methods after Stop.
var ErrStopped = serverproc.ErrStopped

// The Redis deployments: one server, and three independent servers for
// Redlock. Redis's own replication is not used: it is asynchronous, and a
// lock on it can be lost at failover, which Redlock was designed around.
var (
	Single       = remote.Deployment{Name: "single", Topology: remote.Standalone, Servers: 1}
	Independent3 = remote.Deployment{Name: "independent3", Topology: remote.Independent, Servers: 3}
)

// Backend is the Redis backend of the remote tier.
var Backend = remote.Backend{
	Name:        "redis",
	Server:      Binary,
	Install:     Install,
	SkipEnv:     SkipEnv,
	Deployments: []remote.Deployment{Single, Independent3},
	ShortLease:  500 * time.Millisecond,
	Version:     version,
	Start:       startCluster,
}

func version() (string, error) {
	path, err := exec.LookPath(Binary)
	if err != nil {
		return "", ErrNotInstalled
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("redisserver: %s --version: %w", path, err)
	}
	// "Redis server v=7.0.15 sha=..."
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return "redis-server " + v, nil
		}
	}
	return strings.TrimSpace(string(out)), nil
}

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Binary is the redis-server to run: a path, or a name looked up on
	// PATH. Empty means Binary ("redis-server").
	Binary string
	// StartTimeout bounds how long Start waits for the server to answer
	// PING, per attempt. Zero means 5 s.
	StartTimeout time.Duration
}

// Server is one redis-server process: a remote.Node. Its methods are safe
// for concurrent use. After Stop, every method but Addr and Stop returns
// ErrStopped.
type Server struct {
	*serverproc.Process
	port int
}

var _ remote.Node = (*Server)(nil)

// bindRetries is how many ports Start tries when the one it picked is taken
// between picking it and redis-server binding it.
const bindRetries = 5

// Start starts redis-server on a free loopback port:
//
//	redis-server --bind 127.0.0.1 --port P --save "" --appendonly no --daemonize no
//
// and returns once the server answers PING. If another process takes the
// port before redis-server binds it, Start retries with a new port (up to 5
// times). If the server does not answer PING within opts.StartTimeout, Start
// kills it and returns an error naming the binary, the port and the server's
// last output. ctx bounds the whole start.
//
// The caller must Stop the server.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		bin = Binary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w (looked for %q: %v)", ErrNotInstalled, bin, err)
	}
	wait := opts.StartTimeout
	if wait <= 0 {
		wait = 5 * time.Second
	}
	var lastErr error
	for range bindRetries {
		ports, err := serverproc.FreePorts(1)
		if err != nil {
			return nil, fmt.Errorf("redisserver: %w", err)
		}
		port := ports[0]
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{
			"--bind", "127.0.0.1",
			"--port", strconv.Itoa(port),
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
		}
		p, err := serverproc.Start(ctx, serverproc.Spec{
			Name:         fmt.Sprintf("%s on %s", path, addr),
			Command:      func() *exec.Cmd { return exec.Command(path, args...) },
			Ready:        func(ctx context.Context) error { return Ping(ctx, addr) },
			StartTimeout: wait,
		})
		if err == nil {
			return &Server{Process: p, port: port}, nil
		}
		lastErr = err
		if !errors.Is(err, serverproc.ErrExited) || !strings.Contains(err.Error(), "Address already in use") || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// Ping sends PING on a new connection to addr and expects +PONG, within
// ctx.
func Ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Addr returns the server's address, "127.0.0.1:P". The port stays the same
// across Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Serving returns nil if the server answers PING within ctx.
func (s *Server) Serving(ctx context.Context) error { return Ping(ctx, s.Addr()) }

// cluster is a remote.Cluster of independent redis-servers.
type cluster struct {
	d       remote.Deployment
	servers []*Server
}

func startCluster(ctx context.Context, d remote.Deployment) (remote.Cluster, error) {
	if d.Topology == remote.Replicated {
		return nil, fmt.Errorf("redisserver: deployment %q: Redis replication is not part of the lab", d.Name)
	}
	c := &cluster{d: d}
	for i := range d.Servers {
		s, err := Start(ctx, Options{})
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("redisserver: server %d of %d: %w", i+1, d.Servers, err)
		}
		c.servers = append(c.servers, s)
	}
	return c, nil
}

func (c *cluster) Backend() string               { return Backend.Name }
func (c *cluster) Deployment() remote.Deployment { return c.d }
func (c *cluster) Leader(context.Context) (int, error) {
	return -1, fmt.Errorf("redisserver: %w: independent servers", remote.ErrNoLeader)
}

func (c *cluster) Nodes() []remote.Node { return remote.NodesOf(c.servers) }
func (c *cluster) Endpoints() []string  { return remote.EndpointsOf(c.servers) }

func (c *cluster) Stop() {
	for _, s := range c.servers {
		s.Stop()
	}
}
