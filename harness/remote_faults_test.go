package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/servertest"
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
	Family     string `json:"family"` // "lock" or "bucket"
	Impl       string `json:"impl"`
	Survived   bool   `json:"survived"`
	Expected   bool   `json:"expected"` // whether the design is meant to survive it
	Evidence   string `json:"evidence"`
}

// faultTTL is the lease the fault scenarios give: short, so that expiry is
// part of the test.
const faultTTL = 300 * time.Millisecond

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

// TestRemoteFaults injects faults into every registered remote lock and
// bucket, on servers it starts, and records survived or failed with the
// measured evidence. Each outcome is asserted: a correct design must
// survive what it promises to, and a design known to fail must fail.
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

	for _, impl := range RemoteLocks() {
		for i, dep := range impl.Deployments {
			t.Run("lock/"+impl.Backend+"/"+dep+"/"+impl.Name, func(t *testing.T) {
				b, ok := BackendByName(impl.Backend)
				require.True(t, ok)
				c := servertest.StartNamed(t, b, dep) // its own: the scenarios kill servers
				newLock := func(key string) contend.Lock {
					inst, err := impl.New(c, key, faultTTL)
					require.NoError(t, err)
					return closeWith(t, inst)
				}
				cell := func(scenario string) FaultOutcome {
					return FaultOutcome{Scenario: scenario, Backend: impl.Backend, Deployment: dep, Family: "lock", Impl: impl.Name}
				}
				if i == 0 { // the main deployment: faults of the holder and of every server
					record(t, stalePastTTL(t, impl, cell, newLock("faults:stale")))
					record(t, crashWithoutRelease(t, cell, newLock("faults:crash")))
					record(t, pausedServer(t, impl, cell, newLock("faults:pause"), c.Nodes()))
					record(t, killedServer(t, impl, cell, newLock("faults:kill"), c.Nodes()))
				}
				if c.Deployment().Servers >= 3 {
					record(t, quorum(t, cell, newLock("faults:quorum"), c.Nodes()))
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

// stalePastTTL: a holder stalls past its TTL; another client acquires; the
// stale holder then writes to a fenced resource, which must reject it.
func stalePastTTL(t *testing.T, impl RemoteLockImpl, cell func(string) FaultOutcome, l contend.Lock) FaultOutcome {
	// Only a lock with fencing tokens can protect the resource here; the
	// naive control's separate INCR still orders tokens when nothing else
	// runs concurrently, as here (its race is shown in impls/redis).
	o := cell("holder stalls past its TTL; fenced write by the stale holder")
	o.Expected = !impl.NoFencing
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := l.Acquire(ctx)
	require.NoError(t, err)
	time.Sleep(2 * faultTTL) // the stall
	start := time.Now()
	b, err := l.Acquire(ctx)
	if err != nil {
		o.Evidence = fmt.Sprintf("a second client could not acquire after the TTL: %v", err)
		return o
	}
	took := time.Since(start)
	res := &fencedResource{}
	newer := res.write(b.Token())
	stale := res.write(a.Token())
	_ = b.Release(ctx)
	o.Survived = newer && !stale
	o.Evidence = fmt.Sprintf("second client acquired %v after the stall; tokens stale=%d new=%d; stale write %s",
		took.Round(time.Millisecond), a.Token(), b.Token(), map[bool]string{true: "ACCEPTED", false: "rejected"}[stale])
	return o
}

// crashWithoutRelease: the holder disappears; the lock must come back
// within a few TTLs.
func crashWithoutRelease(t *testing.T, cell func(string) FaultOutcome, l contend.Lock) FaultOutcome {
	o := cell("holder crashes without releasing; lock comes back after the TTL")
	o.Expected = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*faultTTL)
	defer cancel()
	_, err := l.Acquire(ctx) // and never released
	require.NoError(t, err)
	start := time.Now()
	b, err := l.Acquire(ctx)
	if err != nil {
		o.Evidence = fmt.Sprintf("not acquirable within %v: %v", 5*faultTTL, err)
		return o
	}
	_ = b.Release(context.Background())
	o.Survived = true
	o.Evidence = fmt.Sprintf("acquired again %v after the crash (TTL %v)", time.Since(start).Round(time.Millisecond), faultTTL)
	return o
}

// pausedServer: SIGSTOP every server; Acquire with a 300 ms context must
// fail within a second, not hang; after SIGCONT the lock must work again.
func pausedServer(t *testing.T, impl RemoteLockImpl, cell func(string) FaultOutcome, l contend.Lock, servers []remote.Node) FaultOutcome {
	// The naive control is expected to fail: its SETNX, sent before the
	// deadline, runs when the server resumes, and the EXPIRE that should
	// follow is never sent, so the lock is held forever.
	o := cell("server paused (SIGSTOP), then resumed: clear error within the deadline, works after")
	o.Expected = impl.Guarantee.Correct()
	// A client that was working when the server stopped: its connections
	// are open, so its requests reach the paused server's socket buffers
	// (a new client would stall in its connection handshake instead).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	warm, err := l.Acquire(ctx)
	cancel()
	require.NoError(t, err)
	require.NoError(t, warm.Release(context.Background()))
	for _, s := range servers {
		require.NoError(t, s.Pause())
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	lease, err := l.Acquire(ctx)
	failedIn := time.Since(start)
	cancel()
	for _, s := range servers {
		require.NoError(t, s.Resume())
	}
	if err == nil {
		_ = lease.Release(context.Background())
		o.Evidence = "Acquire succeeded against a paused server"
		return o
	}
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second+2*faultTTL)
	defer cancel()
	start = time.Now()
	lease, err2 := l.Acquire(ctx)
	if err2 == nil {
		_ = lease.Release(ctx)
	}
	o.Survived = failedIn < time.Second && err2 == nil
	o.Evidence = fmt.Sprintf("paused: error after %v (%v); resumed: acquire %v after %v",
		failedIn.Round(time.Millisecond), shortErr(err), map[bool]string{true: "ok", false: "FAILED: " + shortErr(err2)}[err2 == nil], time.Since(start).Round(time.Millisecond))
	return o
}

// killedServer: SIGKILL every server, Acquire must fail fast; restart it on
// the same port and the lock must work again with a token above the last.
func killedServer(t *testing.T, impl RemoteLockImpl, cell func(string) FaultOutcome, l contend.Lock, servers []remote.Node) FaultOutcome {
	// The naive control's token counter dies with the server: after the
	// restart it hands out a token it handed out before.
	o := cell("server killed, then restarted: clear error, then works with growing tokens")
	o.Expected = impl.Guarantee.Correct()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	before, err := l.Acquire(ctx)
	cancel()
	require.NoError(t, err)
	require.NoError(t, before.Release(context.Background()))
	for _, s := range servers {
		require.NoError(t, s.Kill())
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	_, err = l.Acquire(ctx)
	failedIn := time.Since(start)
	cancel()
	for _, s := range servers {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, s.Restart(rctx))
		rcancel()
	}
	if err == nil {
		o.Evidence = "Acquire succeeded with every server dead"
		return o
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	after, err2 := l.Acquire(ctx)
	if err2 != nil {
		o.Evidence = fmt.Sprintf("down: error after %v; restarted: acquire FAILED: %v", failedIn.Round(time.Millisecond), shortErr(err2))
		return o
	}
	_ = after.Release(ctx)
	grows := after.Token() > before.Token()
	tokens := fmt.Sprintf("token %d -> %d (%s)", before.Token(), after.Token(), map[bool]string{true: "grows", false: "DID NOT GROW"}[grows])
	if impl.NoFencing {
		grows, tokens = true, "no fencing token to check"
	}
	o.Survived = failedIn < time.Second && grows
	o.Evidence = fmt.Sprintf("down: error after %v (%v); restarted: acquired, %s", failedIn.Round(time.Millisecond), shortErr(err), tokens)
	return o
}

// quorum: Redlock-style locks over 3 servers grant with one down and refuse
// cleanly with two down.
func quorum(t *testing.T, cell func(string) FaultOutcome, l contend.Lock, servers []remote.Node) FaultOutcome {
	o := cell("quorum: 1 of 3 servers down grants, 2 of 3 down refuses within the deadline")
	o.Expected = true
	require.NoError(t, servers[0].Kill())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	lease, err1 := l.Acquire(ctx)
	cancel()
	if err1 == nil {
		_ = lease.Release(context.Background())
	}
	require.NoError(t, servers[1].Kill())
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	start := time.Now()
	lease, err2 := l.Acquire(ctx)
	refusedIn := time.Since(start)
	cancel()
	if err2 == nil {
		_ = lease.Release(context.Background())
	}
	for _, s := range servers[:2] {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, s.Restart(rctx))
		rcancel()
	}
	o.Survived = err1 == nil && err2 != nil && refusedIn < 2*time.Second
	o.Evidence = fmt.Sprintf("1 down: %s; 2 down: %s after %v", map[bool]string{true: "granted", false: "REFUSED: " + shortErr(err1)}[err1 == nil],
		map[bool]string{true: "GRANTED", false: "refused"}[err2 == nil], refusedIn.Round(time.Millisecond))
	return o
}

// bucketPaused: with the server paused, TryTake fails closed (false) within
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
