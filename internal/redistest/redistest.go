// Package redistest holds what the Redis packages' tests share: servers
// with clients (plain, with arguments such as a password, or a one-node
// cluster), a bounded wait, a bucket load generator, and error checks.
package redistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/hangreport"
	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/contend-lab/contend/internal/redisx"
	"github.com/contend-lab/contend/internal/serverproc"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/remote"
)

// quiet drops go-redis's log lines: the failure tests make it log every
// refused dial, which buries the test output.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Main is a TestMain that silences go-redis's logger and runs the tests,
// with a report of where they wait if they hang (package hangreport).
func Main(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(hangreport.Run(m))
}

// Servers starts n redis-servers for t and returns a client for each,
// closed at the end of the test.
func Servers(t testing.TB, n int) ([]*redisserver.Server, []*redis.Client) {
	t.Helper()
	servers := Start(t, n)
	clients := make([]*redis.Client, n)
	for i, s := range servers {
		clients[i] = redisx.NewClient(s.Addr())
		t.Cleanup(func() { _ = clients[i].Close() })
	}
	return servers, clients
}

// Server starts one redis-server and returns it with a client.
func Server(t testing.TB) (*redisserver.Server, *redis.Client) {
	s, c := Servers(t, 1)
	return s[0], c[0]
}

// Within fails t if f takes longer than d to return.
func Within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
	t.Logf("%s took %v", what, time.Since(start).Round(time.Millisecond))
}

// Ctx returns a context that ends after d or with t.
func Ctx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ContextTaker is a Redis bucket's decision with its error.
type ContextTaker interface {
	TryTakeContext(context.Context, int64) (bool, error)
}

// WarmLoadBucket is LoadBucket on b after the same load on warm, another
// bucket on the same client: the client's 20 connections are open and the
// script loaded before b's run, so that the run measures a working client
// rather than its start (a cold start under -race can leave demand below
// the supply for tens of milliseconds).
func WarmLoadBucket(t *testing.T, warm, b ContextTaker, cfg contend.BucketConfig) BucketLoad {
	t.Helper()
	LoadBucket(t, warm, cfg)
	return LoadBucket(t, b, cfg)
}

// BucketLoad is what LoadBucket measured.
type BucketLoad struct {
	Granted, Denied, Errs int64
	Elapsed               time.Duration
	Supply                float64 // capacity + rate × elapsed
}

// LoadBucket asks b for one token at a time from 20 goroutines for 300 ms
// (failing t if that takes over 2 s) and returns what it granted, against
// capacity + rate × elapsed for cfg, elapsed from the first request sent. The servers decide on their wall clock
// (TIME), so elapsed is taken on the wall clock too (Round(0) drops the
// monotonic reading).
func LoadBucket(t *testing.T, b ContextTaker, cfg contend.BucketConfig) BucketLoad {
	t.Helper()
	var granted, denied, errs atomic.Int64
	var first atomic.Int64 // wall-clock ns of the first request sent
	Within(t, 2*time.Second, "20 goroutines for 300 ms", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for ctx.Err() == nil {
					first.CompareAndSwap(0, time.Now().Round(0).UnixNano())
					ok, err := b.TryTakeContext(context.Background(), 1)
					switch {
					case err != nil:
						errs.Add(1)
					case ok:
						granted.Add(1)
					default:
						denied.Add(1)
					}
				}
			})
		}
		wg.Wait()
	})
	// The bucket starts full at its first request (a key that does not
	// exist is a full bucket), so the supply counts from when it was sent.
	elapsed := time.Now().Round(0).Sub(time.Unix(0, first.Load()))
	l := BucketLoad{Granted: granted.Load(), Denied: denied.Load(), Errs: errs.Load(), Elapsed: elapsed,
		Supply: float64(cfg.Capacity) + cfg.Rate*elapsed.Seconds()}
	t.Logf("granted %d, denied %d, errors %d in %v: bound %.1f, %.1f%% of it",
		l.Granted, l.Denied, l.Errs, l.Elapsed, l.Supply, 100*float64(l.Granted)/l.Supply)
	return l
}

// Start starts n independent redis-servers for t, stopped when t ends.
func Start(t testing.TB, n int) []*redisserver.Server {
	t.Helper()
	d := redisserver.Single
	if n > 1 {
		d = remote.Deployment{Name: "independent", Topology: remote.Independent, Servers: n}
	}
	var servers []*redisserver.Server
	for _, node := range servertest.Start(t, redisserver.Backend, d).Nodes() {
		servers = append(servers, node.(*redisserver.Server))
	}
	return servers
}

// StartWith starts one redis-server for t with extra arguments, such as
// "--requirepass", "secret", stopped when t ends, and returns its address.
// Unlike Start, it counts a server that answers PING with NOAUTH as ready.
func StartWith(t testing.TB, args ...string) string {
	t.Helper()
	addr, _ := start(t, args, func(ctx context.Context, addr string) error {
		if err := redisserver.Ping(ctx, addr); err != nil && !strings.Contains(err.Error(), "NOAUTH") {
			return err
		}
		return nil
	})
	return addr
}

// StartTLS starts one redis-server for t that speaks only TLS, with a
// certificate for 127.0.0.1 made for the test, and returns its address and
// a pool holding that certificate, for a client's tls.Config.RootCAs.
func StartTLS(t testing.TB) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "redistest"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := serverproc.DataDir("redistest-tls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	addr, _ := start(t, []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no"},
		func(ctx context.Context, addr string) error {
			c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: pool}, MaxRetries: -1})
			defer c.Close()
			return c.Ping(ctx).Err()
		})
	return addr, pool
}

// start starts redis-server for t with args after the lab's defaults (TLS
// only when args name a certificate), and returns its address once ready
// says it serves.
func start(t testing.TB, args []string, ready func(ctx context.Context, addr string) error) (string, *serverproc.Process) {
	t.Helper()
	if _, err := exec.LookPath(redisserver.Binary); err != nil {
		if redisserver.Backend.Skipped() {
			t.Skipf("skipping: %v", redisserver.ErrNotInstalled)
		}
		t.Fatal(redisserver.ErrNotInstalled)
	}
	ports, err := serverproc.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := serverproc.DataDir("redistest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	port := strconv.Itoa(ports[0])
	addr := net.JoinHostPort("127.0.0.1", port)
	listen := []string{"--port", port}
	if slices.Contains(args, "--tls-cert-file") {
		listen = []string{"--port", "0", "--tls-port", port}
	}
	args = append(append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, listen...), args...)
	p, err := serverproc.Start(context.Background(), serverproc.Spec{
		Name:    "redis-server on " + addr,
		Command: func() *exec.Cmd { return exec.Command(redisserver.Binary, args...) },
		Ready:   func(ctx context.Context) error { return ready(ctx, addr) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return addr, p
}

// Cluster starts a one-node Redis Cluster for t (every slot on one
// server), waits until it serves, and returns a ClusterClient of it,
// configured as redisx.NewClient is.
func Cluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addr := StartWith(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	if err := admin.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		if ctx.Err() != nil {
			t.Fatalf("the one-node cluster on %s never reached cluster_state:ok", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	o := redisx.NewClient(addr).Options()
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{addr},
		ContextTimeoutEnabled: true,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		DisableIdentity:       true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// prefixes are the package prefixes an error of the Redis tier may carry.
var prefixes = []string{"redislab: ", "redisref: ", "redisnaive: ", "contend: ", "redis: "}

// RepeatedPrefix returns the first package prefix ("redislab: ", ...)
// that msg says more than once, or "".
func RepeatedPrefix(msg string) string {
	for _, p := range prefixes {
		if strings.Count(msg, p) > 1 {
			return p
		}
	}
	return ""
}

// ExportedTypes returns the exported types declared in the non-test Go
// files of the package in dir, so that a test can check that it covers
// every one.
func ExportedTypes(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					if ts := s.(*ast.TypeSpec); ts.Name.IsExported() {
						names = append(names, ts.Name.Name)
					}
				}
			}
		}
	}
	return names
}

// CheckZero calls, on v (a pointer to a zero value), every method of the
// contracts and helpers it implements, and fails t unless each refuses at
// once with contend.ErrNotConstructed (or reports nothing held, sent or
// waited for), without a panic.
func CheckZero(t *testing.T, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	calls := 0
	refuses := func(what string, err error) {
		t.Helper()
		calls++
		if !errors.Is(err, contend.ErrNotConstructed) {
			t.Errorf("%T.%s: %v, want contend.ErrNotConstructed", v, what, err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("%T: a zero value panicked: %v", v, p)
			}
		}()
		if l, ok := v.(contend.Lock); ok {
			_, err := l.TryAcquire(ctx)
			refuses("TryAcquire", err)
			_, err = l.Acquire(ctx)
			refuses("Acquire", err)
		}
		if s, ok := v.(contend.Semaphore); ok {
			_, err := s.TryAcquire(ctx, 1)
			refuses("TryAcquire", err)
			_, err = s.Acquire(ctx, 1)
			refuses("Acquire", err)
			if s.Capacity() != 0 {
				t.Errorf("%T.Capacity: %d", v, s.Capacity())
			}
		}
		if b, ok := v.(interface {
			contend.Bucket
			redisx.ContextTaker
			LastError() error
		}); ok {
			if b.TryTake(1) {
				t.Errorf("%T.TryTake granted", v)
			}
			refuses("LastError after TryTake", b.LastError())
			_, err := b.TryTakeContext(ctx, 1)
			refuses("TryTakeContext", err)
		}
		if h, ok := v.(interface {
			Held(context.Context) (int64, error)
		}); ok {
			_, err := h.Held(ctx)
			refuses("Held", err)
		}
		if r, ok := v.(interface{ RoundTrips() int64 }); ok && r.RoundTrips() != 0 {
			t.Errorf("%T.RoundTrips: %d", v, r.RoundTrips())
		}
		if s, ok := v.(interface{ Settle(context.Context) error }); ok {
			if err := s.Settle(ctx); err != nil {
				t.Errorf("%T.Settle: %v", v, err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatalf("%T: a zero value's method hung", v)
	}
	if calls == 0 {
		t.Errorf("%T implements none of the contracts", v)
	}
}

// ZeroValues runs CheckZero on each of zeros (type name -> pointer to a
// zero value) and fails t unless zeros and options (the option types, whose
// nil values the constructors must ignore) name every exported type of the
// package in the current directory, so that a new type needs a check.
func ZeroValues(t *testing.T, zeros map[string]any, options ...string) {
	t.Helper()
	names := slices.Clone(options)
	for name, v := range zeros {
		names = append(names, name)
		t.Run(name, func(t *testing.T) { CheckZero(t, v) })
	}
	exported := ExportedTypes(t, ".")
	slices.Sort(names)
	slices.Sort(exported)
	if !slices.Equal(names, exported) {
		t.Errorf("zero-value checks cover %v, the package exports %v: a new exported type needs a check", names, exported)
	}
}
