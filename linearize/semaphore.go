package linearize

import (
	"fmt"
	"strings"

	"github.com/anishathalye/porcupine"
)

// MaxPermits is the largest capacity NewSemaphore models: the model's
// state is a fixed array of at most that many leases (each holds at least
// one permit), so that states compare with == and the checker can cache
// them.
const MaxPermits = 16

type semLease struct {
	token uint64 // 0 for a lease granted with an unknown outcome
	n     int64
}

// semState is the sequential semaphore: the live leases, ordered by token,
// the permits they hold, and the largest token granted so far.
type semState struct {
	last   uint64
	used   int64
	count  int
	leases [MaxPermits]semLease
}

// NewSemaphore returns the model of a contend.Semaphore of capacity
// permits (1 to MaxPermits), with fencing tokens:
//   - Acquire or TryAcquire(n) Done(t) only when n permits are free and t
//     is greater than every token granted before; the lease t then holds n;
//   - TryAcquire(n) Held only when fewer than n permits are free, or when
//     some permit is held: a FIFO semaphore (golang.org/x/sync's, the
//     lab's) fails a TryAcquire that fits while an earlier Acquire waits,
//     and a waiter is not part of the sequential state. A TryAcquire that
//     fails while every permit is free is Illegal;
//   - Release(t) Done only while lease t is live, which frees its permits;
//     NotHeld only when it is not;
//   - Expire(t) frees lease t if it is live, and is always legal.
//
// An acquire of unknown outcome takes its permits if they are free (with
// an unknown token), or nothing; a release of unknown outcome frees its
// lease if it is live.
func NewSemaphore(capacity int64) (porcupine.Model, error) {
	return newSemaphore(capacity, true)
}

// NewUnfencedSemaphore is NewSemaphore for a semaphore that hands out no
// fencing token (harness.SemaphoreImpl.NoFencing): a token only names its
// lease, so Done(t) needs t unused by every live lease, not greater than
// every token granted before.
func NewUnfencedSemaphore(capacity int64) (porcupine.Model, error) {
	return newSemaphore(capacity, false)
}

func newSemaphore(capacity int64, fenced bool) (porcupine.Model, error) {
	if capacity < 1 || capacity > MaxPermits {
		return porcupine.Model{}, fmt.Errorf("linearize: semaphore capacity %d outside [1, %d]", capacity, MaxPermits)
	}
	return porcupine.Model{
		Init: func() any { return semState{} },
		Step: func(state, input, output any) (bool, any) {
			return semStep(capacity, fenced, state.(semState), input.(LockInput), output.(LockOutput))
		},
		DescribeOperation: describeLockOp,
		DescribeState: func(state any) string {
			s := state.(semState)
			var b strings.Builder
			fmt.Fprintf(&b, "%d of %d held", s.used, capacity)
			for _, l := range s.leases[:s.count] {
				fmt.Fprintf(&b, ", token %d: %d", l.token, l.n)
			}
			return b.String()
		},
	}, nil
}

func semStep(capacity int64, fenced bool, s semState, in LockInput, out LockOutput) (bool, any) {
	switch in.Op {
	case Acquire, TryAcquire:
		fits := s.used+in.N <= capacity
		switch out.Outcome {
		case Done:
			if !fits || in.N < 1 || fenced && out.Token <= s.last || !fenced && s.find(out.Token) >= 0 {
				return false, s
			}
			if fenced {
				s.last = out.Token
			}
			return true, s.add(semLease{token: out.Token, n: in.N})
		case Held:
			return in.Op == TryAcquire && (!fits || s.used > 0), s
		case Unknown:
			if !fits || in.N < 1 {
				return true, s
			}
			s.last++
			return true, s.add(semLease{n: in.N})
		}
	case Release, Expire:
		i := s.find(in.Token)
		if in.Op == Expire { // the lease's end by the clock: frees it if live
			if i < 0 {
				return true, s
			}
			return true, s.remove(i)
		}
		switch out.Outcome {
		case Done:
			if i < 0 {
				return false, s
			}
			return true, s.remove(i)
		case NotHeld:
			return i < 0, s
		case Unknown:
			if i < 0 {
				return true, s
			}
			return true, s.remove(i)
		}
	}
	return false, s
}

// add returns s with l among its leases, kept in token order so that equal
// states are ==.
func (s semState) add(l semLease) semState {
	i := s.count
	for i > 0 && s.leases[i-1].token > l.token {
		s.leases[i] = s.leases[i-1]
		i--
	}
	s.leases[i] = l
	s.count++
	s.used += l.n
	return s
}

// find returns the index of the live lease with token t (never an
// unknown lease's 0), or -1.
func (s semState) find(t uint64) int {
	for i, l := range s.leases[:s.count] {
		if t != 0 && l.token == t {
			return i
		}
	}
	return -1
}

func (s semState) remove(i int) semState {
	s.used -= s.leases[i].n
	copy(s.leases[i:], s.leases[i+1:s.count])
	s.count--
	s.leases[s.count] = semLease{}
	return s
}
