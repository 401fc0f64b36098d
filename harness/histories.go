package harness

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/linearize"
)

// The recorded runs below are the stress runs whose histories issue 13's
// linearizability checks read (package linearize). They are short bursts
// with a fixed number of operations per client, not RunCounter, RunLock
// and RunSemaphore themselves: those run for a duration and are what the
// benchmarks measure, so they record nothing; and a history of a whole
// stress run would be far too long to check (the check is exponential in
// the operations that overlap). Many short histories are checked instead.

// recordPatience bounds every blocking Acquire of a recorded run, so that
// a lock that never grants fails the run instead of hanging it.
const recordPatience = 10 * time.Second

// RecordCounter starts clients goroutines, released together, that each
// make ops operations on c: Adds of the mixed-sign sequence RunCounter
// adds, with every loadEvery-th operation a Load instead (none if
// loadEvery is 0). Once all have returned, client 0 Loads once more, so a
// lost update shows even in a history without other Loads. It returns the
// history, for linearize.Counter.
func RecordCounter(c contend.Counter, clients, ops, loadEvery int) []porcupine.Operation {
	rec := linearize.NewRecorder(clients)
	together(clients, func(g int) {
		for i := range ops {
			if loadEvery > 0 && i%loadEvery == loadEvery-1 {
				o := rec.Call(g, linearize.CounterInput{Load: true})
				o.Return(linearize.CounterOutput{Value: c.Load()})
				continue
			}
			d := counterDeltas[(g+i)%len(counterDeltas)]
			o := rec.Call(g, linearize.CounterInput{Delta: d})
			c.Add(d)
			o.Return(linearize.CounterOutput{})
		}
	})
	o := rec.Call(0, linearize.CounterInput{Load: true})
	o.Return(linearize.CounterOutput{Value: c.Load()})
	return rec.History()
}

// RecordLock starts clients goroutines, released together, that each make
// rounds attempts on l: every third attempt (offset by client) a
// TryAcquire, the others an Acquire bounded by a generous timeout. A
// granted lease is held for WorkRounds of Work and a yield, then released.
// It returns the history, for linearize.Lock; an Acquire that fails, or a
// Release that fails other than with ErrNotHeld, ends the run with an error.
func RecordLock(l contend.Lock, clients, rounds int) ([]porcupine.Operation, error) {
	return recordContenders(clients, rounds, func(ctx context.Context, _ int, try bool) (contend.Lease, error) {
		if try {
			return l.TryAcquire(ctx)
		}
		return l.Acquire(ctx)
	}, func(int) int64 { return 0 })
}

// RecordSemaphore is RecordLock for a semaphore: client g asks for
// permits(g) permits each time. It returns the history, for the model
// linearize.NewSemaphore(s.Capacity()).
func RecordSemaphore(s contend.Semaphore, clients, rounds int, permits func(g int) int64) ([]porcupine.Operation, error) {
	return recordContenders(clients, rounds, func(ctx context.Context, g int, try bool) (contend.Lease, error) {
		if try {
			return s.TryAcquire(ctx, permits(g))
		}
		return s.Acquire(ctx, permits(g))
	}, permits)
}

// recordContenders is the loop RecordLock and RecordSemaphore share.
func recordContenders(clients, rounds int,
	acquire func(ctx context.Context, g int, try bool) (contend.Lease, error),
	permits func(g int) int64,
) ([]porcupine.Operation, error) {
	rec := linearize.NewRecorder(clients)
	errs := make([]error, clients)
	ctx, cancel := context.WithTimeout(context.Background(), recordPatience)
	defer cancel()
	together(clients, func(g int) {
		acc := uint64(g) + 1
		for i := range rounds {
			try := (g+i)%3 == 0
			in := linearize.LockInput{Op: linearize.Acquire, N: permits(g)}
			if try {
				in.Op = linearize.TryAcquire
			}
			o := rec.Call(g, in)
			lease, err := acquire(ctx, g, try)
			if try && errors.Is(err, contend.ErrHeld) {
				o.Return(linearize.LockOutput{Outcome: linearize.Held})
				continue
			}
			if err != nil {
				errs[g] = fmt.Errorf("client %d: %v: %w", g, in.Op, err)
				return
			}
			tok := lease.Token()
			o.Return(linearize.LockOutput{Token: tok})
			acc = Work(acc^tok, WorkRounds)
			runtime.Gosched()
			o = rec.Call(g, linearize.LockInput{Op: linearize.Release, Token: tok})
			err = lease.Release(context.Background())
			switch {
			case err == nil:
				o.Return(linearize.LockOutput{})
			case errors.Is(err, contend.ErrNotHeld):
				o.Return(linearize.LockOutput{Outcome: linearize.NotHeld})
			default:
				errs[g] = fmt.Errorf("client %d: Release: %w", g, err)
				return
			}
		}
		workSink.Add(acc)
	})
	return rec.History(), errors.Join(errs...)
}

// together runs f(0) ... f(n-1) on n goroutines released at once, and
// waits for them all.
func together(n int, f func(g int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			<-start
			f(g)
		})
	}
	close(start)
	wg.Wait()
}

// RecordSplitAdds records the history that shows a striped counter's Load
// is not linearizable: client 0 Adds +1 adds times, client 1 Adds -1 adds
// times, and client 2 Loads until both have finished. A Load that reads a
// stripe before client 0's Adds reach it and another after client 1's
// reach it (it was descheduled between the two reads) returns a sum the
// counter never held: client 1's Adds without client 0's earlier ones.
func RecordSplitAdds(c contend.Counter, adds int) []porcupine.Operation {
	rec := linearize.NewRecorder(3)
	var writing sync.WaitGroup
	writing.Add(2)
	together(3, func(g int) {
		if g == 2 {
			done := make(chan struct{})
			go func() { writing.Wait(); close(done) }()
			for {
				select {
				case <-done:
					return
				default:
				}
				o := rec.Call(g, linearize.CounterInput{Load: true})
				o.Return(linearize.CounterOutput{Value: c.Load()})
			}
		}
		defer writing.Done()
		d := int64(1 - 2*g)
		for range adds {
			o := rec.Call(g, linearize.CounterInput{Delta: d})
			c.Add(d)
			o.Return(linearize.CounterOutput{})
		}
	})
	return rec.History()
}
