package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/netfault"
	"github.com/contend-lab/contend/internal/servertest"
	"github.com/contend-lab/contend/linearize"
	"github.com/contend-lab/contend/remote"
)

// FaultOutcome is one cell of the fault table: what one implementation did
// in one injected-fault scenario. TestRemoteFaults asserts each outcome
// against what the design promises, and, when CONTEND_FAULTS_OUT names a
// file, appends it there as a JSON line for cmd/report's fault table.
type FaultOutcome struct {
	Scenario   string `json:"scenario"`
	Backend    string `json:"backend"`
	Deployment string `json:"deployment"`
	Family     string `json:"family"` // "lock", "semaphore" (as a lock of 1 permit) or "bucket"
	Impl       string `json:"impl"`
	Survived   bool   `json:"survived"`
	Expected   bool   `json:"expected"` // whether the design is meant to survive it
	Evidence   string `json:"evidence"`
	// Linearizable is porcupine's verdict on the history the scenario
	// recorded (package linearize): "Ok", "Illegal" or "Unknown".
	Linearizable porcupine.CheckResult `json:"linearizable"`
	// Ops is how many operations that history had.
	Ops int `json:"ops"`
}

// fencedResource accepts a write only with a token at least as high as any
// it has seen: what a storage system does with fencing tokens.
type fencedResource struct {
	mu      sync.Mutex
	highest uint64
}

func (r *fencedResource) write(token uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.highest || token == 0 {
		return false // token 0: the lock hands out none, so nothing can be fenced
	}
	r.highest = token
	return true
}

// faultScenario is one fault the remote locks face. Scenarios are named by
// ID in an implementation's Deviations when its design does not survive
// them (the controls, and references without fencing).
type faultScenario struct {
	id, name string
	// applies reports whether the scenario runs on a deployment (nil:
	// on the implementation's main deployment only).
	applies func(d remote.Deployment) bool
	// run injects the fault and reports whether the lock survived it,
	// with the measured evidence.
	run func(t *testing.T, fx *faultFixture) (bool, string)
}

// faultScenarios are the scenarios, in the fault table's order.
func faultScenarios() []faultScenario {
	replicated := func(d remote.Deployment) bool { return d.Topology == remote.Replicated }
	return []faultScenario{
		{"stale-holder", "holder cut off past its lease: another client acquires no earlier than the holder's TTL said, and the stale holder's fenced write is rejected", nil, staleHolder},
		{"crashed-holder", "holder crashes without releasing: the lock comes back after the lease", nil, crashedHolder},
		{"waiter-cut-off", "a waiter is cut off until its lease ends while the holder holds: nobody behind it is let in early", nil, waiterCutOff},
		{"partitioned-client", "one client partitioned from the servers: its Acquire fails within its deadline, the others still acquire, it works after the heal", nil, partitionedClient},
		{"slow-client", "latency past the lease on one client's path: its lease never claims more time than the servers give it", nil, slowClient},
		{"reset-reply", "connection reset after the server ran an Acquire, before its reply: the hold is not lost track of, others acquire within a lease", nil, resetReply},
		{"paused-servers", "every server paused (SIGSTOP), then resumed: clear error within the deadline, works after", nil, pausedServers},
		{"killed-servers", "every server killed, then restarted: clear error, then works with growing tokens", nil, killedServers},
		{"quorum", "1 of 3 servers down still grants; 2 of 3 down refuses within the deadline", func(d remote.Deployment) bool { return d.Servers >= 3 }, quorum},
		{"leader-killed", "the leader killed: the service continues, and the gap is measured", replicated, leaderKilled},
		{"leader-paused", "the leader paused (SIGSTOP): the service continues, and the gap is measured", replicated, leaderPaused},
	}
}

// faultFixture is one implementation on one deployment, started for its
// fault scenarios.
type faultFixture struct {
	impl      RemoteImpl
	noFencing bool
	weakTry   bool
	c         remote.Cluster
	lease     time.Duration
	newLock   func(c remote.Cluster, key string) (contend.Lock, func() error, error)
	key       string

	// rec records every client's operations, for the linearizability
	// check; client 0 is the clock, which records leases' expiries.
	rec     *linearize.Recorder
	clients int
	names   atomic.Uint64 // lease names for a lock without fencing tokens

	// closers close every client the scenario made: at its end, or when
	// the watchdog finds it hung (a broken design may block past every
	// deadline; closing its clients makes it return).
	mu      sync.Mutex
	closers []func()
}

func (fx *faultFixture) onClose(f func()) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.closers = append(fx.closers, f)
}

// closeClients closes every client made so far.
func (fx *faultFixture) closeClients() {
	fx.mu.Lock()
	cs := fx.closers
	fx.closers = nil
	fx.mu.Unlock()
	for _, c := range cs {
		c()
	}
}

// runWatched runs sc with a watchdog: if it has not returned within
// limit, its clients are closed, so that whatever blocks returns, and the
// scenario is failed as hung.
func (fx *faultFixture) runWatched(t *testing.T, sc faultScenario, limit time.Duration) (bool, string) {
	var hung atomic.Bool
	dog := time.AfterFunc(limit, func() {
		hung.Store(true)
		fx.closeClients()
	})
	survived, evidence := sc.run(t, fx)
	dog.Stop()
	fx.closeClients()
	if hung.Load() {
		return false, fmt.Sprintf("HUNG: still blocked after %v, its clients were closed; then: %s", limit, evidence)
	}
	return survived, evidence
}

// faultClients is how many clients a scenario may make, the clock
// included.
const faultClients = 6

// faultClient is one client of the lock, through proxies of its own. Its
// Acquire, TryAcquire and its leases' Release are recorded.
type faultClient struct {
	l   contend.Lock
	net netfault.Proxies
	id  int
	fx  *faultFixture
}

// client returns a new client of the scenario's lock, reaching the servers
// through its own proxies; both are closed when t ends.
func (fx *faultFixture) client(t *testing.T) *faultClient {
	t.Helper()
	view, ps, err := netfault.Wrap(fx.c)
	require.NoError(t, err)
	l, closeLock, err := fx.newLock(view, fx.key)
	if err != nil {
		view.Stop()
	}
	require.NoError(t, err)
	var once sync.Once
	closeAll := func() { once.Do(func() { _ = closeLock(); view.Stop() }) }
	fx.onClose(closeAll)
	t.Cleanup(closeAll)
	fx.clients++
	require.Less(t, fx.clients, faultClients, "a scenario makes at most %d clients", faultClients-1)
	return &faultClient{l: l, net: ps, id: fx.clients, fx: fx}
}

func (c *faultClient) Acquire(ctx context.Context) (contend.Lease, error) {
	return c.record(linearize.Acquire, func() (contend.Lease, error) { return c.l.Acquire(ctx) })
}

func (c *faultClient) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return c.record(linearize.TryAcquire, func() (contend.Lease, error) { return c.l.TryAcquire(ctx) })
}

// record runs an acquire as an operation of the history. An error other
// than ErrHeld is an unknown outcome: a request may have reached a server
// and taken effect there.
func (c *faultClient) record(op linearize.LockOp, acquire func() (contend.Lease, error)) (contend.Lease, error) {
	o := c.fx.rec.Call(c.id, linearize.LockInput{Op: op, N: 1})
	l, err := acquire()
	switch {
	case err == nil:
		name := l.Token()
		if c.fx.noFencing { // the token names the lease, and there is none
			name = 1<<62 + c.fx.names.Add(1)
		}
		o.Return(linearize.LockOutput{Token: name})
		return &faultLease{Lease: l, c: c, name: name}, nil
	case op == linearize.TryAcquire && errors.Is(err, contend.ErrHeld):
		o.Return(linearize.LockOutput{Outcome: linearize.Held})
	default:
		o.Unknown(linearize.LockOutput{Outcome: linearize.Unknown})
	}
	return nil, err
}

// faultLease is a recorded client's lease: its Release is recorded too.
type faultLease struct {
	contend.Lease
	c    *faultClient
	name uint64 // the lease's name in the history
}

func (l *faultLease) Release(ctx context.Context) error {
	o := l.c.fx.rec.Call(l.c.id, linearize.LockInput{Op: linearize.Release, Token: l.name})
	err := l.Lease.Release(ctx)
	switch {
	case err == nil:
		o.Return(linearize.LockOutput{})
	case errors.Is(err, contend.ErrNotHeld):
		o.Return(linearize.LockOutput{Outcome: linearize.NotHeld})
	default:
		o.Unknown(linearize.LockOutput{Outcome: linearize.Unknown})
	}
	return err
}

// expired records that lease l's TTL ran out at the instant at (as its
// holder's clock saw it): the servers may end it then, or later, so the
// Expire is placed somewhere from at to the end of the history.
func (fx *faultFixture) expired(l contend.Lease, at time.Time) {
	fl, ok := l.(*faultLease)
	if !ok {
		return
	}
	fx.rec.CallAt(0, linearize.LockInput{Op: linearize.Expire, Token: fl.name}, at).Unknown(linearize.LockOutput{})
}

// check checks the recorded history against the lock model (the unfenced
// one for a lock without fencing tokens); an Illegal history is drawn in
// dir.
func (fx *faultFixture) check(t *testing.T, dir string) linearize.Verdict {
	t.Helper()
	v, err := linearize.Check(lockModel(fx.noFencing, fx.weakTry), fx.rec.History(), checkTimeout, dir, "fault-"+fx.impl.Backend+"-"+fx.impl.Name)
	require.NoError(t, err)
	return v
}

// patience bounds every wait of a scenario that should succeed: several
// leases, and a ZooKeeper or etcd election.
func (fx *faultFixture) patience() time.Duration { return 5*fx.lease + 5*time.Second }

func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// semLock is a semaphore of one permit used as a lock, so that the lock
// scenarios apply to semaphores too.
type semLock struct{ s contend.Semaphore }

func (l semLock) Acquire(ctx context.Context) (contend.Lease, error) { return l.s.Acquire(ctx, 1) }
func (l semLock) TryAcquire(ctx context.Context) (contend.Lease, error) {
	return l.s.TryAcquire(ctx, 1)
}

// TestRemoteFaults injects faults into every registered remote lock and
// semaphore (as a lock of one permit), and bucket, on servers it starts,
// and records survived or failed with the measured evidence. Each outcome
// is asserted: a design must survive what it promises to, and a scenario
// its registry entry declares it fails (Deviations) must still fail.
func TestRemoteFaults(t *testing.T) {
	var out *os.File
	if path := os.Getenv("CONTEND_FAULTS_OUT"); path != "" {
		var err error
		out, err = os.Create(path)
		require.NoError(t, err)
		defer out.Close()
	}
	record := func(t *testing.T, o FaultOutcome) {
		t.Helper()
		t.Logf("%s / %s: survived=%v (expected %v): %s", o.Scenario, o.Impl, o.Survived, o.Expected, o.Evidence)
		assert.Equal(t, o.Expected, o.Survived, "%s / %s: %s", o.Scenario, o.Impl, o.Evidence)
		if out != nil {
			b, err := json.Marshal(o)
			require.NoError(t, err)
			_, err = fmt.Fprintf(out, "%s\n", b)
			require.NoError(t, err)
		}
	}

	type subject struct {
		family    string
		impl      RemoteImpl
		noFencing bool
		weakTry   bool
		newLock   func(c remote.Cluster, key string, ttl time.Duration) (contend.Lock, func() error, error)
	}
	var subjects []subject
	for _, impl := range RemoteLocks() {
		subjects = append(subjects, subject{"lock", impl.RemoteImpl, impl.NoFencing, impl.WeakTryAcquire != "",
			func(c remote.Cluster, key string, ttl time.Duration) (contend.Lock, func() error, error) {
				inst, err := impl.New(c, key, ttl)
				return inst.Impl, inst.Close, err
			}})
	}
	for _, impl := range RemoteSemaphores() {
		subjects = append(subjects, subject{"semaphore", impl.RemoteImpl, impl.NoFencing, false,
			func(c remote.Cluster, key string, ttl time.Duration) (contend.Lock, func() error, error) {
				inst, err := impl.New(c, key, 1, ttl)
				return semLock{inst.Impl}, inst.Close, err
			}})
	}
	// A broken lock must show a history that is not linearizable in some
	// scenario: the checker, not only the invariants, tells it apart.
	verdicts := map[string][]porcupine.CheckResult{}
	defer func() {
		for _, s := range subjects {
			if s.family != "lock" || s.impl.Guarantee != Broken {
				continue
			}
			k := s.family + "/" + s.impl.Backend + "/" + s.impl.Name
			if vs, ran := verdicts[k]; ran {
				assert.Contains(t, vs, porcupine.Illegal, "%s: no fault scenario recorded a history that is not linearizable", k)
			}
		}
	}()
	for _, s := range subjects {
		b, ok := BackendByName(s.impl.Backend)
		require.True(t, ok)
		for i, dep := range s.impl.Deployments {
			d, ok := b.Deployment(dep)
			require.True(t, ok)
			var scenarios []faultScenario
			for _, sc := range faultScenarios() {
				if (sc.applies == nil && i == 0) || (sc.applies != nil && sc.applies(d)) {
					scenarios = append(scenarios, sc)
				}
			}
			if len(scenarios) == 0 {
				continue
			}
			t.Run(s.family+"/"+s.impl.Backend+"/"+dep+"/"+s.impl.Name, func(t *testing.T) {
				c := servertest.Start(t, b, d) // its own: the scenarios kill servers
				for _, sc := range scenarios {
					t.Run(sc.id, func(t *testing.T) {
						fx := &faultFixture{impl: s.impl, noFencing: s.noFencing, weakTry: s.weakTry, c: c, lease: b.ShortLease, key: "faults:" + sc.id,
							newLock: func(c remote.Cluster, key string) (contend.Lock, func() error, error) {
								return s.newLock(c, key, b.ShortLease)
							},
							rec: linearize.NewRecorder(faultClients)}
						// Every scenario starts from a serving cluster, however
						// the last one ended.
						ctx, cancel := ctxFor(servertest.StartTimeout)
						_, err := remote.WaitServing(ctx, c)
						cancel()
						require.NoError(t, err)
						survived, evidence := fx.runWatched(t, sc, 2*fx.patience()+10*time.Second)
						why, fails := s.impl.Deviations[sc.id]
						if fails {
							evidence += " (declared: " + why + ")"
						}
						expected := !fails
						if why, may := s.impl.MayFail[sc.id]; may {
							evidence += " (may fail: " + why + ")"
							fails, expected = true, survived // recorded, not asserted
						}
						v := fx.check(t, historyDir(t))
						if v.Visualization != "" {
							t.Logf("history of %d operations not linearizable, drawn in %s", v.Ops, v.Visualization)
						}
						if !fails {
							assert.Equal(t, porcupine.Ok, v.Result, "%s / %s: the history of a scenario it survives must be linearizable", sc.id, s.impl.Name)
						}
						verdicts[s.family+"/"+s.impl.Backend+"/"+s.impl.Name] = append(verdicts[s.family+"/"+s.impl.Backend+"/"+s.impl.Name], v.Result)
						record(t, FaultOutcome{Scenario: sc.name, Backend: s.impl.Backend, Deployment: dep, Family: s.family,
							Impl: s.impl.Name, Survived: survived, Expected: expected, Evidence: evidence, Linearizable: v.Result, Ops: v.Ops})
					})
				}
			})
		}
	}
	for _, impl := range RemoteBuckets() {
		dep := impl.Deployments[0]
		t.Run("bucket/"+impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
			b, ok := BackendByName(impl.Backend)
			require.True(t, ok)
			c := servertest.StartNamed(t, b, dep)
			inst, err := impl.New(c, "faults:bucket", contend.BucketConfig{Capacity: 10, Rate: 10})
			require.NoError(t, err)
			o := FaultOutcome{Backend: impl.Backend, Deployment: dep, Family: "bucket", Impl: impl.Name}
			record(t, bucketPaused(t, o, closeWith(t, inst), c.Nodes()))
		})
	}
}

// staleHolder: A acquires and is cut off from every server. B must not
// acquire before A's lease, as A's TTL stated at the cut, has run out; once
// A's lease has ended on the servers B acquires, the stale A's write to a
// fenced resource is rejected, and A's late Release must not free B's hold
// (C's TryAcquire then finds the lock held).
func staleHolder(t *testing.T, fx *faultFixture) (bool, string) {
	a, b, c := fx.client(t), fx.client(t), fx.client(t)
	ctx, cancel := ctxFor(fx.patience())
	defer cancel()
	la, err := a.Acquire(ctx)
	require.NoError(t, err)
	a.net.Partition()
	cut := time.Now()
	left, _ := la.TTL()
	fx.expired(la, cut.Add(left))
	lb, err := b.Acquire(ctx)
	took := time.Since(cut)
	a.net.Heal()
	if err != nil {
		return false, fmt.Sprintf("B could not acquire within %v of the cut: %v", fx.patience(), shortErr(err))
	}
	res := &fencedResource{}
	newer := res.write(lb.Token())
	stale := res.write(la.Token())
	early := took < left
	fenced := newer && !stale
	errStale := la.Release(ctx)
	lc, errC := c.TryAcquire(ctx)
	freed := errC == nil
	if freed {
		_ = lc.Release(context.Background())
	}
	_ = lb.Release(context.Background())
	return !early && fenced && !freed, fmt.Sprintf("A's TTL at the cut %v; B acquired %v after it%s; tokens stale=%d new=%d; stale write %s; A's late Release: %s; C's TryAcquire then: %s",
		left.Round(time.Millisecond), took.Round(time.Millisecond), map[bool]string{true: " (EARLY: two holders)", false: ""}[early],
		la.Token(), lb.Token(), map[bool]string{true: "ACCEPTED", false: "rejected"}[stale], shortErr(errStale),
		map[bool]string{true: "GRANTED while B held it", false: "refused (" + shortErr(errC) + ")"}[freed])
}

// crashedHolder: A acquires and its process dies: its connections are
// reset and it never connects again. B acquires once A's lease has ended.
func crashedHolder(t *testing.T, fx *faultFixture) (bool, string) {
	a, b := fx.client(t), fx.client(t)
	ctx, cancel := ctxFor(fx.patience())
	defer cancel()
	la, err := a.Acquire(ctx)
	require.NoError(t, err)
	for _, p := range a.net {
		p.RefuseNew(true)
	}
	a.net.Partition()
	a.net.ResetConnections()
	crash := time.Now()
	left, _ := la.TTL()
	fx.expired(la, crash.Add(left))
	lb, err := b.Acquire(ctx)
	if err != nil {
		return false, fmt.Sprintf("not acquirable within %v of the crash: %v", fx.patience(), shortErr(err))
	}
	_ = lb.Release(context.Background())
	return true, fmt.Sprintf("acquired again %v after the crash (lease %v)", time.Since(crash).Round(time.Millisecond), fx.lease)
}

// waiterCutOff: A holds (and extends its lease); B waits, and C waits
// behind B; B is cut off until its lease has certainly ended. C must not
// acquire while A holds: a lock that lets the next waiter in when the one
// ahead of it leaves the queue, without looking again, fails here.
func waiterCutOff(t *testing.T, fx *faultFixture) (bool, string) {
	a, b, c := fx.client(t), fx.client(t), fx.client(t)
	ctx, cancel := ctxFor(fx.patience())
	defer cancel()
	la, err := a.Acquire(ctx)
	require.NoError(t, err)
	stopExtending := make(chan struct{})
	extended := make(chan error, 1)
	go func() { // A keeps its lease alive, as a holder doing long work would
		tick := time.NewTicker(fx.lease / 4)
		defer tick.Stop()
		for {
			select {
			case <-stopExtending:
				extended <- nil
				return
			case <-tick.C:
				ectx, ecancel := ctxFor(fx.lease)
				err := la.Extend(ectx, fx.lease)
				ecancel()
				// A slow Extend on a loaded machine is retried at the next
				// tick; A has lost the lock only once its lease ran out.
				if left, _ := la.TTL(); err != nil && (left == 0 || errors.Is(err, contend.ErrNotHeld)) {
					fx.expired(la, time.Now())
					extended <- err
					return
				}
			}
		}
	}()
	waiter := func(cl *faultClient, got chan<- time.Time) {
		l, err := cl.Acquire(ctx)
		if err != nil {
			close(got)
			return
		}
		got <- time.Now()
		_ = l.Release(context.Background())
	}
	bGot, cGot := make(chan time.Time, 1), make(chan time.Time, 1)
	var waiters sync.WaitGroup
	defer waiters.Wait() // before the history is read
	defer cancel()
	waiters.Go(func() { waiter(b, bGot) })
	time.Sleep(fx.lease / 2) // B queues first
	waiters.Go(func() { waiter(c, cGot) })
	time.Sleep(fx.lease / 2)
	b.net.Partition()
	b.net.ResetConnections()
	time.Sleep(3 * fx.lease) // B's lease (session) ends on the servers
	var early bool
	select {
	case _, ok := <-cGot:
		early = ok
	default:
	}
	close(stopExtending)
	extErr := <-extended
	releasedAt := time.Now()
	_ = la.Release(context.Background())
	b.net.Heal()
	var after string
	select {
	case at, ok := <-cGot:
		if ok {
			after = fmt.Sprintf("C acquired %v after A released", at.Sub(releasedAt).Round(time.Millisecond))
		} else {
			after = "C's Acquire failed"
		}
	case <-ctx.Done():
		after = "C never acquired"
	}
	if extErr != nil {
		return false, fmt.Sprintf("A could not keep its lease: %v", shortErr(extErr))
	}
	if early {
		return false, "C acquired while A held the lock: TWO HOLDERS, after the waiter ahead of C was cut off"
	}
	return after != "C never acquired", "C did not acquire while A held; " + after
}

// partitionedClient: A is partitioned from every server. Its Acquire fails
// within its deadline, B still acquires, and A works again after the heal.
func partitionedClient(t *testing.T, fx *faultFixture) (bool, string) {
	a, b := fx.client(t), fx.client(t)
	warm(t, a)
	a.net.Partition()
	ctx, cancel := ctxFor(300 * time.Millisecond)
	start := time.Now()
	la, errA := a.Acquire(ctx)
	failedIn := time.Since(start)
	cancel()
	if errA == nil {
		_ = la.Release(context.Background())
	}
	ctx, cancel = ctxFor(fx.patience())
	defer cancel()
	lb, errB := b.Acquire(ctx)
	if errB == nil {
		_ = lb.Release(context.Background())
	}
	a.net.Heal()
	start = time.Now()
	la, errHealed := a.Acquire(ctx)
	if errHealed == nil {
		_ = la.Release(context.Background())
	}
	ok := errA != nil && failedIn < time.Second && errB == nil && errHealed == nil
	return ok, fmt.Sprintf("partitioned: %s after %v; other client: %s; healed: %s after %v",
		map[bool]string{true: "GRANTED", false: "refused (" + shortErr(errA) + ")"}[errA == nil], failedIn.Round(time.Millisecond),
		okText(errB), okText(errHealed), time.Since(start).Round(time.Millisecond))
}

// slowClient: responses to A arrive 1.5 leases late. When A's Acquire
// returns, its TTL may claim no more time than the servers give it: B must
// not acquire before that TTL has run out, and a stale write by A is
// rejected if B got in.
func slowClient(t *testing.T, fx *faultFixture) (bool, string) {
	a, b := fx.client(t), fx.client(t)
	warm(t, a)
	delay := fx.lease * 3 / 2
	require.NoError(t, a.net.SetLatency(0, delay))
	actx, acancel := ctxFor(3*delay + fx.lease)
	la, errA := a.Acquire(actx)
	acancel()
	got := time.Now()
	require.NoError(t, a.net.SetLatency(0, 0))
	ctx, cancel := ctxFor(fx.patience())
	defer cancel()
	if errA != nil {
		// Refusing is safe: a lease that arrives too late to be useful
		// may be abandoned. B must then get the lock.
		lb, errB := b.Acquire(ctx)
		if errB == nil {
			_ = lb.Release(context.Background())
		}
		return errB == nil, fmt.Sprintf("slow Acquire failed (%s); other client: %s", shortErr(errA), okText(errB))
	}
	left, _ := la.TTL()
	fx.expired(la, got.Add(left))
	lb, errB := b.Acquire(ctx)
	took := time.Since(got)
	if errB != nil {
		return false, fmt.Sprintf("A's lease arrived with TTL %v; B could not acquire: %v", left.Round(time.Millisecond), shortErr(errB))
	}
	defer lb.Release(context.Background())
	res := &fencedResource{}
	newer := res.write(lb.Token())
	stale := res.write(la.Token())
	early := took < left
	fenced := fx.noFencing || (newer && !stale) // without a token, the TTL is all a holder has
	return !early && fenced, fmt.Sprintf("A's lease arrived %v late with TTL %v; B acquired %v later%s; stale write %s",
		delay, left.Round(time.Millisecond), took.Round(time.Millisecond), map[bool]string{true: " (EARLY: A's TTL overstated its lease)", false: ""}[early],
		map[bool]string{true: "ACCEPTED", false: "rejected"}[stale])
}

// resetReply: the connection of A is reset after the server ran A's
// Acquire and before A read the reply. Whatever A then returns, B acquires
// within a lease of A's Acquire returning (released or expired), with a
// token above any A saw.
func resetReply(t *testing.T, fx *faultFixture) (bool, string) {
	a, b := fx.client(t), fx.client(t)
	warm(t, a)
	for _, p := range a.net {
		p.ResetNextResponse()
	}
	ctx, cancel := ctxFor(fx.patience())
	defer cancel()
	actx, acancel := ctxFor(2 * fx.lease)
	la, errA := a.Acquire(actx)
	acancel()
	var aToken uint64
	if errA == nil {
		aToken = la.Token()
		_ = la.Release(context.Background())
	}
	returned := time.Now()
	lb, errB := b.Acquire(ctx)
	took := time.Since(returned)
	if errB != nil {
		return false, fmt.Sprintf("A: %s; B could not acquire within %v: %v", okText(errA), fx.patience(), shortErr(errB))
	}
	_ = lb.Release(context.Background())
	grows := fx.noFencing || lb.Token() > aToken
	return grows && took < fx.lease+3*time.Second, fmt.Sprintf("A: %s; B acquired %v after A returned; tokens A=%d B=%d",
		okText(errA), took.Round(time.Millisecond), aToken, lb.Token())
}

// warm makes one Acquire and Release through l, so that its connections
// are open before a fault.
func warm(t *testing.T, l contend.Lock) {
	t.Helper()
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	lease, err := l.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, lease.Release(ctx))
}

func okText(err error) string {
	if err == nil {
		return "ok"
	}
	return "FAILED: " + shortErr(err)
}

// pausedServers: SIGSTOP every server; Acquire with a 300 ms context must
// fail within a second, not hang; after SIGCONT the lock must work again.
func pausedServers(t *testing.T, fx *faultFixture) (bool, string) {
	l := fx.client(t)
	// A client that was working when the servers stopped: its connections
	// are open, so its requests reach the paused servers' socket buffers
	// (a new client would stall in its connection handshake instead).
	warm(t, l)
	for _, s := range fx.c.Nodes() {
		require.NoError(t, s.Pause())
	}
	ctx, cancel := ctxFor(300 * time.Millisecond)
	start := time.Now()
	lease, err := l.Acquire(ctx)
	failedIn := time.Since(start)
	cancel()
	for _, s := range fx.c.Nodes() {
		require.NoError(t, s.Resume())
	}
	if err == nil {
		_ = lease.Release(context.Background())
		return false, "Acquire succeeded against paused servers"
	}
	ctx, cancel = ctxFor(fx.patience())
	defer cancel()
	start = time.Now()
	lease, err2 := l.Acquire(ctx)
	if err2 == nil {
		_ = lease.Release(ctx)
	}
	return failedIn < time.Second && err2 == nil, fmt.Sprintf("paused: error after %v (%v); resumed: acquire %s after %v",
		failedIn.Round(time.Millisecond), shortErr(err), okText(err2), time.Since(start).Round(time.Millisecond))
}

// killedServers: SIGKILL every server, Acquire must fail fast; restart
// them on the same ports and the lock must work again with a token above
// the last.
func killedServers(t *testing.T, fx *faultFixture) (bool, string) {
	l := fx.client(t)
	ctx, cancel := ctxFor(10 * time.Second)
	before, err := l.Acquire(ctx)
	cancel()
	require.NoError(t, err)
	require.NoError(t, before.Release(context.Background()))
	for _, s := range fx.c.Nodes() {
		require.NoError(t, s.Kill())
	}
	ctx, cancel = ctxFor(300 * time.Millisecond)
	start := time.Now()
	_, err = l.Acquire(ctx)
	failedIn := time.Since(start)
	cancel()
	restart(t, fx.c.Nodes()...)
	if err == nil {
		return false, "Acquire succeeded with every server dead"
	}
	ctx, cancel = ctxFor(fx.patience())
	defer cancel()
	after, err2 := l.Acquire(ctx)
	if err2 != nil {
		return false, fmt.Sprintf("down: error after %v; restarted: acquire FAILED: %v", failedIn.Round(time.Millisecond), shortErr(err2))
	}
	_ = after.Release(ctx)
	grows := after.Token() > before.Token()
	tokens := fmt.Sprintf("token %d -> %d (%s)", before.Token(), after.Token(), map[bool]string{true: "grows", false: "DID NOT GROW"}[grows])
	if fx.noFencing {
		grows, tokens = true, "no fencing token to check"
	}
	return failedIn < time.Second && grows, fmt.Sprintf("down: error after %v (%v); restarted: acquired, %s", failedIn.Round(time.Millisecond), shortErr(err), tokens)
}

// restart restarts nodes, each bounded.
func restart(t *testing.T, nodes ...remote.Node) {
	t.Helper()
	for _, s := range nodes {
		ctx, cancel := ctxFor(servertest.StartTimeout)
		require.NoError(t, s.Restart(ctx))
		cancel()
	}
}

// quorum: with one of three servers down a lock still grants; with two
// down it refuses within the deadline.
func quorum(t *testing.T, fx *faultFixture) (bool, string) {
	l := fx.client(t)
	warm(t, l)
	nodes := fx.c.Nodes()
	require.NoError(t, nodes[0].Kill())
	ctx, cancel := ctxFor(fx.patience())
	lease, err1 := l.Acquire(ctx)
	cancel()
	if err1 == nil {
		_ = lease.Release(context.Background())
	}
	require.NoError(t, nodes[1].Kill())
	ctx, cancel = ctxFor(500 * time.Millisecond)
	start := time.Now()
	lease, err2 := l.Acquire(ctx)
	refusedIn := time.Since(start)
	cancel()
	if err2 == nil {
		_ = lease.Release(context.Background())
	}
	restart(t, nodes[:2]...)
	return err1 == nil && err2 != nil && refusedIn < 2*time.Second, fmt.Sprintf("1 down: %s; 2 down: %s after %v",
		map[bool]string{true: "granted", false: "REFUSED: " + shortErr(err1)}[err1 == nil],
		map[bool]string{true: "GRANTED", false: "refused"}[err2 == nil], refusedIn.Round(time.Millisecond))
}

// leaderKilled and leaderPaused: fault the replicated cluster's leader,
// then measure how long until an Acquire succeeds again.
func leaderKilled(t *testing.T, fx *faultFixture) (bool, string) {
	return leaderFault(t, fx, "killed", func(n remote.Node) error { return n.Kill() }, func(n remote.Node) { restart(t, n) })
}

func leaderPaused(t *testing.T, fx *faultFixture) (bool, string) {
	return leaderFault(t, fx, "paused", func(n remote.Node) error { return n.Pause() }, func(n remote.Node) { require.NoError(t, n.Resume()) })
}

func leaderFault(t *testing.T, fx *faultFixture, what string, fault func(remote.Node) error, undo func(remote.Node)) (bool, string) {
	l := fx.client(t)
	warm(t, l)
	ctx, cancel := ctxFor(10 * time.Second)
	leader, err := fx.c.Leader(ctx)
	cancel()
	require.NoError(t, err)
	node := fx.c.Nodes()[leader]
	require.NoError(t, fault(node))
	start := time.Now()
	deadline := start.Add(fx.patience())
	var lastErr error
	var gap time.Duration
	for time.Now().Before(deadline) {
		ctx, cancel := ctxFor(time.Second)
		lease, err := l.Acquire(ctx)
		cancel()
		if err == nil {
			gap = time.Since(start)
			_ = lease.Release(context.Background())
			break
		}
		lastErr = err
	}
	undo(node)
	if gap == 0 {
		return false, fmt.Sprintf("leader (node %d) %s: no Acquire succeeded within %v: %v", leader, what, fx.patience(), shortErr(lastErr))
	}
	return true, fmt.Sprintf("leader (node %d) %s: acquired again after %v", leader, what, gap.Round(time.Millisecond))
}

// bucketPaused: with the servers paused, TryTake fails closed (false) within
// its deadline, and works again after resume.
func bucketPaused(t *testing.T, o FaultOutcome, b contend.Bucket, servers []remote.Node) FaultOutcome {
	o.Scenario, o.Expected = "server paused (SIGSTOP): TryTake fails closed within the deadline, works after resume", true
	require.True(t, b.TryTake(1), "a full bucket grants")
	for _, s := range servers {
		require.NoError(t, s.Pause())
	}
	start := time.Now()
	granted := b.TryTake(1)
	took := time.Since(start)
	for _, s := range servers {
		require.NoError(t, s.Resume())
	}
	deadline := time.Now().Add(3 * time.Second)
	var after bool
	for !after && time.Now().Before(deadline) {
		after = b.TryTake(1)
	}
	o.Survived = !granted && took < 2*time.Second && after
	o.Evidence = fmt.Sprintf("paused: TryTake returned %v after %v; resumed: %s", granted, took.Round(time.Millisecond),
		map[bool]string{true: "grants again", false: "STILL FAILING"}[after])
	return o
}

func shortErr(err error) string {
	switch {
	case err == nil:
		return "no error"
	case errors.Is(err, context.DeadlineExceeded):
		return "context deadline exceeded"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
