package linearize

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// op builds an operation of a synthetic history.
func op(client int, call, ret int64, in, out any) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func add(d int64) CounterInput { return CounterInput{Delta: d} }

var (
	load    = CounterInput{Load: true}
	added   = CounterOutput{}
	lost    = CounterOutput{Unknown: true}
	acquire = LockInput{Op: Acquire, N: 1}
	try     = LockInput{Op: TryAcquire, N: 1}
	held    = LockOutput{Outcome: Held}
	unknown = LockOutput{Outcome: Unknown}
)

func loaded(v int64) CounterOutput          { return CounterOutput{Value: v} }
func granted(t uint64) LockOutput           { return LockOutput{Token: t} }
func release(t uint64) LockInput            { return LockInput{Op: Release, Token: t} }
func expire(t uint64) LockInput             { return LockInput{Op: Expire, Token: t} }
func acquireN(n int64) LockInput            { return LockInput{Op: Acquire, N: n} }
func tryN(n int64) LockInput                { return LockInput{Op: TryAcquire, N: n} }
func write(t uint64, v int64) RegisterInput { return RegisterInput{Token: t, Value: v} }

var (
	released = LockOutput{}
	notHeld  = LockOutput{Outcome: NotHeld}
	read     = RegisterInput{Read: true}
	accepted = RegisterOutput{}
	rejected = RegisterOutput{Outcome: Rejected}
)

func readV(v int64) RegisterOutput { return RegisterOutput{Value: v} }

func mustSemaphore(t *testing.T, capacity int64) porcupine.Model {
	m, err := NewSemaphore(capacity)
	require.NoError(t, err)
	return m
}

// TestModels checks each model on small synthetic histories: legal ones
// must be Ok, and each fault a model exists to catch must be Illegal.
func TestModels(t *testing.T) {
	sem2 := mustSemaphore(t, 2)
	unfenced2, err := NewUnfencedSemaphore(2)
	require.NoError(t, err)
	tests := []struct {
		name    string
		model   porcupine.Model
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"counter/sequential", Counter, []porcupine.Operation{
			op(0, 0, 1, add(2), added), op(0, 2, 3, add(-5), added), op(0, 4, 5, load, loaded(-3)),
		}, porcupine.Ok},
		{"counter/concurrent load sees either side", Counter, []porcupine.Operation{
			op(0, 0, 10, add(1), added), op(1, 2, 3, load, loaded(0)), op(2, 4, 5, load, loaded(1)),
		}, porcupine.Ok},
		{"counter/lost update", Counter, []porcupine.Operation{
			op(0, 0, 10, add(1), added), op(1, 0, 10, add(1), added), op(0, 11, 12, load, loaded(1)),
		}, porcupine.Illegal},
		{"counter/load sees a later add but not an earlier one", Counter, []porcupine.Operation{
			op(0, 0, 2, add(1), added), op(1, 3, 5, add(10), added), op(2, 1, 6, load, loaded(10)),
		}, porcupine.Illegal},
		{"counter/unknown add that took effect", Counter, []porcupine.Operation{
			op(0, 0, 100, add(1), lost), op(1, 5, 6, load, loaded(1)),
		}, porcupine.Ok},
		{"counter/unknown add that did not", Counter, []porcupine.Operation{
			op(0, 0, 100, add(1), lost), op(1, 5, 6, load, loaded(0)),
		}, porcupine.Ok},
		{"counter/unknown add cannot take effect before its call", Counter, []porcupine.Operation{
			op(1, 0, 1, load, loaded(1)), op(0, 5, 100, add(1), lost),
		}, porcupine.Illegal},

		{"lock/a lease expired by the clock is handed over", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(2, 5, 100, expire(1), released), op(1, 2, 10, acquire, granted(2)),
			op(0, 11, 12, release(1), notHeld),
		}, porcupine.Ok},
		{"lock/handed over before the lease could have expired", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 4, acquire, granted(2)), op(2, 5, 100, expire(1), released),
		}, porcupine.Illegal},
		{"lock/a stale release frees the next holder's lock", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(2, 2, 100, expire(1), released), op(1, 3, 4, acquire, granted(2)),
			op(0, 5, 6, release(1), released),
		}, porcupine.Illegal},
		{"weak lock/TryAcquire held on a free lock is allowed", NewLock(Fenced | WeakTryAcquire), []porcupine.Operation{
			op(0, 0, 1, try, held), op(0, 2, 3, acquire, granted(1)),
		}, porcupine.Ok},
		{"weak lock/still no two holders", NewLock(Fenced | WeakTryAcquire), []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, try, granted(2)),
		}, porcupine.Illegal},
		{"lock/TryAcquire held on a free lock", Lock, []porcupine.Operation{
			op(0, 0, 1, try, held), op(0, 2, 3, acquire, granted(1)),
		}, porcupine.Illegal},
		{"unfenced lock/tokens only name leases", UnfencedLock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(7)), op(0, 2, 3, release(7), released), op(1, 4, 5, acquire, granted(3)),
		}, porcupine.Ok},
		{"unfenced lock/two holders", UnfencedLock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(7)), op(1, 2, 3, acquire, granted(3)),
		}, porcupine.Illegal},
		{"fenced lock/a smaller token after a larger one", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(7)), op(0, 2, 3, release(7), released), op(1, 4, 5, acquire, granted(3)),
		}, porcupine.Illegal},
		{"semaphore/an expired lease frees its permits", sem2, []porcupine.Operation{
			op(0, 0, 1, acquireN(2), granted(1)), op(2, 2, 100, expire(1), released), op(1, 3, 4, acquireN(2), granted(2)),
		}, porcupine.Ok},
		{"semaphore/permits handed over before the lease could have expired", sem2, []porcupine.Operation{
			op(0, 0, 1, acquireN(2), granted(1)), op(1, 2, 3, acquireN(1), granted(2)), op(2, 5, 100, expire(1), released),
		}, porcupine.Illegal},
		{"lock/acquire release acquire", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 0, 5, acquire, granted(2)),
			op(0, 2, 3, release(1), released), op(1, 6, 7, release(2), released),
		}, porcupine.Ok},
		{"lock/try-acquire held while held", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, try, held), op(0, 4, 5, release(1), released),
		}, porcupine.Ok},
		{"lock/two holders", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, acquire, granted(2)),
			op(0, 4, 5, release(1), released), op(1, 4, 5, release(2), released),
		}, porcupine.Illegal},
		{"lock/repeated token", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(0, 2, 3, release(1), released),
			op(1, 4, 5, acquire, granted(1)), op(1, 6, 7, release(1), released),
		}, porcupine.Illegal},
		{"lock/token decreases", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(5)), op(0, 2, 3, release(5), released),
			op(1, 4, 5, acquire, granted(3)),
		}, porcupine.Illegal},
		// The bug of go.dev/issue/13's mutex and reentrant locks: a
		// TryAcquire that fails while no lease is live.
		{"lock/try-acquire held while free", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(0, 2, 3, release(1), released),
			op(1, 4, 5, try, held), op(1, 6, 7, try, granted(2)),
		}, porcupine.Illegal},
		{"lock/try-acquire held concurrent with a release", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(0, 2, 6, release(1), released), op(1, 4, 5, try, held),
		}, porcupine.Ok},
		{"lock/release of a holder's lease is not held", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, release(1), notHeld),
		}, porcupine.Illegal},
		{"lock/second release not held", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(0, 2, 3, release(1), released), op(0, 4, 5, release(1), notHeld),
		}, porcupine.Ok},
		{"lock/second release accepted", Lock, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(0, 2, 3, release(1), released), op(0, 4, 5, release(1), released),
		}, porcupine.Illegal},
		{"lock/unknown acquire that did not take effect", Lock, []porcupine.Operation{
			op(0, 0, 100, acquire, unknown), op(1, 5, 6, acquire, granted(1)), op(1, 7, 8, release(1), released),
		}, porcupine.Ok},
		{"lock/unknown acquire that took effect", Lock, []porcupine.Operation{
			op(0, 0, 100, acquire, unknown), op(1, 5, 6, try, held), op(1, 7, 8, try, held),
		}, porcupine.Ok},
		{"lock/unknown acquire that took effect uses a token", Lock, []porcupine.Operation{
			op(0, 0, 100, acquire, unknown), op(1, 5, 6, try, held), op(2, 10, 101, acquire, granted(1)),
		}, porcupine.Illegal},

		{"semaphore/two of two", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 0, 1, acquire, granted(2)), op(2, 2, 3, try, held),
			op(0, 4, 5, release(1), released), op(2, 6, 7, try, granted(3)),
		}, porcupine.Ok},
		{"semaphore/over-admits", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 0, 1, acquire, granted(2)), op(2, 2, 3, acquire, granted(3)),
		}, porcupine.Illegal},
		{"semaphore/over-admits a multi-permit request", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, acquireN(2), granted(2)),
		}, porcupine.Illegal},
		{"semaphore/try-acquire held with room behind a waiter", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(2, 1, 9, acquireN(2), granted(2)), op(1, 2, 3, try, held),
			op(0, 4, 5, release(1), released),
		}, porcupine.Ok},
		{"semaphore/try-acquire held while every permit is free", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(0, 2, 3, release(1), released), op(1, 4, 5, try, held),
		}, porcupine.Illegal},
		{"semaphore/try-acquire of two held with one free", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, tryN(2), held),
		}, porcupine.Ok},
		{"semaphore/repeated token", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, acquire, granted(1)),
		}, porcupine.Illegal},
		{"semaphore/release frees only its own permits", sem2, []porcupine.Operation{
			op(0, 0, 1, acquireN(2), granted(1)), op(1, 2, 3, release(7), notHeld), op(1, 4, 5, try, held),
		}, porcupine.Ok},
		{"semaphore/stale release frees permits", sem2, []porcupine.Operation{
			op(0, 0, 1, acquireN(2), granted(1)), op(0, 2, 3, release(1), released),
			op(1, 4, 5, acquireN(2), granted(2)), op(0, 6, 7, release(1), released),
		}, porcupine.Illegal},
		{"semaphore/unknown acquire took its permits", sem2, []porcupine.Operation{
			op(0, 0, 100, acquireN(2), unknown), op(1, 5, 6, try, held),
		}, porcupine.Ok},
		{"semaphore/token smaller than an earlier lease's", sem2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(2)), op(1, 2, 3, acquire, granted(1)),
		}, porcupine.Illegal},
		{"unfenced semaphore/token smaller than an earlier lease's", unfenced2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(2)), op(1, 2, 3, acquire, granted(1)), op(1, 4, 5, release(1), released),
			op(0, 6, 7, release(2), released),
		}, porcupine.Ok},
		{"unfenced semaphore/token of a live lease", unfenced2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(1)), op(1, 2, 3, acquire, granted(1)),
		}, porcupine.Illegal},
		{"unfenced semaphore/over-admits", unfenced2, []porcupine.Operation{
			op(0, 0, 1, acquire, granted(3)), op(1, 0, 1, acquire, granted(2)), op(2, 2, 3, acquire, granted(1)),
		}, porcupine.Illegal},

		{"register/fenced writes", Register, []porcupine.Operation{
			op(0, 0, 1, write(1, 10), accepted), op(0, 2, 3, write(1, 11), accepted),
			op(1, 4, 5, write(2, 20), accepted), op(0, 6, 7, write(1, 12), rejected), op(2, 8, 9, read, readV(20)),
		}, porcupine.Ok},
		{"register/accepts an old token", Register, []porcupine.Operation{
			op(1, 0, 1, write(2, 20), accepted), op(0, 2, 3, write(1, 10), accepted),
		}, porcupine.Illegal},
		{"register/rejects a newer token", Register, []porcupine.Operation{
			op(0, 0, 1, write(1, 10), accepted), op(1, 2, 3, write(2, 20), rejected),
		}, porcupine.Illegal},
		{"register/read of a rejected write", Register, []porcupine.Operation{
			op(1, 0, 1, write(2, 20), accepted), op(0, 2, 3, write(1, 10), rejected), op(2, 4, 5, read, readV(10)),
		}, porcupine.Illegal},
		{"register/unknown write seen", Register, []porcupine.Operation{
			op(0, 0, 100, write(3, 30), RegisterOutput{Outcome: Unknown}), op(1, 5, 6, write(2, 20), rejected),
		}, porcupine.Ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Check(tc.model, tc.history, 0, "", "")
			require.NoError(t, err)
			assert.Equal(t, tc.want, v.Result)
			assert.Equal(t, len(tc.history), v.Ops)
		})
	}
}

func TestNewSemaphoreCapacity(t *testing.T) {
	for _, c := range []int64{0, -1, MaxPermits + 1} {
		_, err := NewSemaphore(c)
		assert.Error(t, err, "capacity %d", c)
	}
	_, err := NewSemaphore(MaxPermits)
	assert.NoError(t, err)
}

// TestRecorder records from several goroutines and checks the merged
// history: every operation once, ordered by call, each returning after
// its call, and an unknown outcome returning after everything else.
func TestRecorder(t *testing.T) {
	const clients, each = 4, 50
	r := NewRecorder(clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				o := r.Call(c, add(int64(i)))
				if c == 0 && i == 0 {
					o.Unknown(lost)
					continue
				}
				o.Return(added)
			}
		})
	}
	wg.Wait()
	h := r.History()
	require.Len(t, h, clients*each)
	var end int64
	for i, o := range h {
		if i > 0 {
			assert.LessOrEqual(t, h[i-1].Call, o.Call, "ordered by call")
		}
		assert.LessOrEqual(t, o.Call, o.Return)
		if o.Output != lost {
			end = max(end, o.Return)
		}
	}
	unknowns := 0
	for _, o := range h {
		if o.Output == lost {
			unknowns++
			assert.Greater(t, o.Return, end, "an unknown outcome returns after every other operation")
		}
	}
	assert.Equal(t, 1, unknowns)
}

// TestCheckDrawsIllegalHistories: an Illegal verdict comes with an HTML
// visualisation in the given directory, an Ok one without.
func TestCheckDrawsIllegalHistories(t *testing.T) {
	dir := t.TempDir()
	bad := []porcupine.Operation{op(0, 0, 10, add(1), added), op(1, 0, 10, add(1), added), op(0, 11, 12, load, loaded(1))}
	v, err := Check(Counter, bad, 0, dir, "lost-update")
	require.NoError(t, err)
	assert.Equal(t, porcupine.Illegal, v.Result)
	require.NotEmpty(t, v.Visualization)
	assert.Equal(t, dir, filepath.Dir(v.Visualization))
	html, err := os.ReadFile(v.Visualization)
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(html), "Add(1)"), "the drawing names the operations")

	v, err = Check(Counter, bad[:2], 0, dir, "ok")
	require.NoError(t, err)
	assert.Equal(t, porcupine.Ok, v.Result)
	assert.Empty(t, v.Visualization)

	path := filepath.Join(dir, "given.html")
	res, err := Visualize(Counter, bad, path)
	require.NoError(t, err)
	assert.Equal(t, porcupine.Illegal, res)
	assert.FileExists(t, path)
}

// TestSummary: verdicts add up, Illegal wins over Unknown over Ok, and the
// JSON lines read back as written.
func TestSummary(t *testing.T) {
	s := Summary{Family: "lock", Impl: "x", Scenario: "s"}
	s.Add(Verdict{Result: porcupine.Ok, Ops: 3})
	assert.Equal(t, porcupine.Ok, s.Verdict)
	s.Add(Verdict{Result: porcupine.Unknown, Ops: 4})
	assert.Equal(t, porcupine.Unknown, s.Verdict)
	s.Add(Verdict{Result: porcupine.Illegal, Ops: 5, Visualization: "a.html"})
	s.Add(Verdict{Result: porcupine.Illegal, Ops: 6, Visualization: "b.html"})
	s.Add(Verdict{Result: porcupine.Ok, Ops: 7})
	assert.Equal(t, Summary{Family: "lock", Impl: "x", Scenario: "s", Histories: 5, Ops: 25, Illegal: 2,
		Verdict: porcupine.Illegal, Visualization: "a.html"}, s)

	path := filepath.Join(t.TempDir(), "h.jsonl")
	other := Summary{Family: "counter", Impl: "y", Histories: 1, Ops: 2, Verdict: porcupine.Ok}
	require.NoError(t, AppendJSONLines(path, s))
	require.NoError(t, AppendJSONLines(path, other))
	got, err := ReadJSONLines(path)
	require.NoError(t, err)
	assert.Equal(t, []Summary{s, other}, got)
}
