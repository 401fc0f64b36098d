package contendtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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
// a lock that never grants fails the run instead of hanging it; its
// Releases have ReleasePatience more.
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
	return recordContenders(clients, rounds, lockAcquire(l), func(int) int64 { return 0 }, false)
}

// RecordUnfencedLock is RecordLock for a lock that hands out no fencing
// token (Token is 0): the history names each lease itself, for
// linearize.UnfencedLock.
func RecordUnfencedLock(l contend.Lock, clients, rounds int) ([]porcupine.Operation, error) {
	return recordContenders(clients, rounds, lockAcquire(l), func(int) int64 { return 0 }, true)
}

func lockAcquire(l contend.Lock) func(ctx context.Context, _ int, try bool) (contend.Lease, error) {
	return func(ctx context.Context, _ int, try bool) (contend.Lease, error) {
		if try {
			return l.TryAcquire(ctx)
		}
		return l.Acquire(ctx)
	}
}

// RecordSemaphore is RecordLock for a semaphore: client g asks for
// permits(g) permits each time. It returns the history, for the model
// linearize.NewSemaphore(s.Capacity()).
func RecordSemaphore(s contend.Semaphore, clients, rounds int, permits func(g int) int64) ([]porcupine.Operation, error) {
	return recordContenders(clients, rounds, semaphoreAcquire(s, permits), permits, false)
}

// RecordUnfencedSemaphore is RecordSemaphore for a semaphore whose leases
// may all carry token 0: the history names each lease itself, for
// linearize.NewUnfencedSemaphore.
func RecordUnfencedSemaphore(s contend.Semaphore, clients, rounds int, permits func(g int) int64) ([]porcupine.Operation, error) {
	return recordContenders(clients, rounds, semaphoreAcquire(s, permits), permits, true)
}

func semaphoreAcquire(s contend.Semaphore, permits func(g int) int64) func(ctx context.Context, g int, try bool) (contend.Lease, error) {
	return func(ctx context.Context, g int, try bool) (contend.Lease, error) {
		if try {
			return s.TryAcquire(ctx, permits(g))
		}
		return s.Acquire(ctx, permits(g))
	}
}

// recordContenders is the loop RecordLock and RecordSemaphore share. With
// named, each lease is recorded under a name of the recorder's (unique,
// never 0) instead of its token.
func recordContenders(clients, rounds int,
	acquire func(ctx context.Context, g int, try bool) (contend.Lease, error),
	permits func(g int) int64, named bool,
) ([]porcupine.Operation, error) {
	rec := linearize.NewRecorder(clients)
	errs := make([]error, clients)
	ctx, cancel := context.WithTimeout(context.Background(), recordPatience)
	defer cancel()
	releaseCtx, releaseCancel := context.WithTimeout(context.Background(), recordPatience+ReleasePatience)
	defer releaseCancel()
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
			if named {
				tok = 1<<62 | uint64(g)<<32 | uint64(i+1)
			}
			o.Return(linearize.LockOutput{Token: tok})
			acc = Work(acc^tok, WorkRounds)
			runtime.Gosched()
			o = rec.Call(g, linearize.LockInput{Op: linearize.Release, Token: tok})
			err = lease.Release(releaseCtx)
			switch {
			case err == nil:
				o.Return(linearize.LockOutput{})
			case errors.Is(err, contend.ErrNotHeld):
				o.Return(linearize.LockOutput{Outcome: linearize.NotHeld})
			default:
				errs[g] = fmt.Errorf("client %d: Release: %w", g, releasing(releaseCtx, err))
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
// is not linearizable, if the run makes it: a Load that reads one stripe
// before an Add(-1) to it and another stripe after a later Add(+2) to that
// one returns a sum the counter, going v, v-1, v+1, never held (v+2).
//
// Four goroutines on their own threads, bound by pin (which binds the
// calling thread to a CPU): the loader (client 3) on CPU 0 Loads in a
// loop; writer X (client 0), also on CPU 0, sleeps for nap, rounds times,
// and each time it wakes makes one of the round's two Adds while writer Y1
// or Y2 (clients 1 and 2), spinning on CPU 1, makes the other, the second
// called once the first has returned. X shares its CPU with the loader, so
// its wake-ups take the CPU from the loader at whatever instruction the
// loader is at: sometimes between its reads of two stripes, and then both
// Adds land in between. Which stripe a writer's Adds go to is the
// counter's choice (pershard's: by CPU number where RDPID has it, else by
// P id), so the rounds cycle through both partners and both orders. At
// GOMAXPROCS 4, with all four running, at least one of Y1 and Y2 is on a
// P of the other parity than X's, so on a two-stripe pershard one of the
// four combinations has the Adds on the two stripes in the order the
// loader reads them.
//
// Time is a logical clock, an atomic counter each client increments just
// before and just after each operation: the VM's clock costs a hundred
// times a Load, and would leave the loader almost no time inside one.
// Each operation's linearization point lies between its two ticks, and an
// operation that returned before another was called has the smaller
// ticks, so the history is as valid as one on a real clock. It keeps every
// Add and the Loads during which another client ticked (the others are
// reads that overlapped no tick, which could only make the history easier
// to linearize). Before anything is recorded, each writer Adds and takes
// back 1, a few hundred times, so that a counter that caches a stripe hint
// per goroutine stack slot (pershard) has it set.
func RecordSplitAdds(c contend.Counter, rounds int, nap time.Duration, pin func(cpu int) error) ([]porcupine.Operation, error) {
	const loader, ys = 3, 2
	var clock, stop paddedInt64
	var done [ys]paddedInt64 // 1 once Y1, Y2 have added what they were sent
	var todo [ys]chan int64  // the delta Y1, Y2 are to add; closed at the end
	for y := range todo {
		todo[y] = make(chan int64, 1)
	}
	ops := make([][]porcupine.Operation, loader+1)
	errs := make([]error, loader+1)
	ready := make(chan struct{}, loader+1)
	start := make(chan struct{})
	var wg sync.WaitGroup
	// run starts client's goroutine on a thread bound to cpu: prep, then,
	// once every client is ready and all could be bound, f.
	run := func(client, cpu int, prep, f func()) {
		wg.Go(func() {
			runtime.LockOSThread() // never unlocked: the bound thread exits with the goroutine
			if errs[client] = pin(cpu); errs[client] == nil {
				prep()
			}
			ready <- struct{}{}
			if <-start; stop.Load() == 0 {
				f()
			}
		})
	}
	add := func(client int, d int64) {
		call := clock.Add(1)
		c.Add(d)
		ops[client] = append(ops[client], porcupine.Operation{ClientId: client, Input: linearize.CounterInput{Delta: d}, Call: call, Output: linearize.CounterOutput{}, Return: clock.Add(1)})
	}
	// warm Adds and takes back 1, through add as the recorded Adds do
	// (pershard refreshes its hint on about one Add in 64), then drops what
	// it recorded: nobody has recorded anything yet.
	warm := func(client int) {
		for i := range 256 {
			add(client, int64(1-i%2*2))
		}
		ops[client] = ops[client][:0]
	}
	run(loader, 0, func() {}, func() {
		for stop.Load() == 0 {
			call := clock.Add(1)
			v := c.Load()
			if ret := clock.Add(1); ret != call+1 {
				ops[loader] = append(ops[loader], porcupine.Operation{ClientId: loader, Input: linearize.CounterInput{Load: true}, Call: call, Output: linearize.CounterOutput{Value: v}, Return: ret})
			}
		}
	})
	for y := range ys {
		run(1+y, 1, func() { warm(1 + y) }, func() {
			for d := range todo[y] {
				add(1+y, d)
				done[y].Store(1)
			}
		})
	}
	// byY has Y y add d, and spins until it has: X keeps the CPU from the
	// loader meanwhile.
	byY := func(y int, d int64) {
		todo[y] <- d
		for done[y].Load() == 0 {
		}
		done[y].Store(0)
	}
	run(0, 0, func() { warm(0) }, func() {
		defer func() {
			stop.Store(1)
			for y := range todo {
				close(todo[y])
			}
		}()
		for r := range rounds {
			time.Sleep(nap)
			y := r / 2 % ys
			if r%2 == 0 {
				add(0, -1)
				byY(y, 2)
			} else {
				byY(y, -1)
				add(0, 2)
			}
		}
	})
	for range loader + 1 {
		<-ready
	}
	err := errors.Join(errs...)
	if err != nil {
		stop.Store(1) // nobody runs f
	}
	close(start)
	wg.Wait()
	return slices.Concat(ops...), err
}

// paddedInt64 is an atomic.Int64 alone on its cache lines.
type paddedInt64 struct {
	atomic.Int64
	_ [120]byte
}
