package linearize

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// LockOp names an operation of a contend.Lock or contend.Semaphore.
type LockOp uint8

// The operations of contend.Lock, contend.Semaphore and contend.Lease, and
// Expire, the end of a remote lease by the clock: not a call a client
// makes, but an event a fault scenario knows has happened somewhere within
// its interval (between the instant the holder's TTL ran out and the end of
// the history), recorded so that a lock may hand over a lease that expired
// and must not hand over one that had not.
const (
	Acquire LockOp = iota
	TryAcquire
	Release
	Expire
)

// String returns the operation's method name.
func (op LockOp) String() string {
	switch op {
	case Acquire:
		return "Acquire"
	case TryAcquire:
		return "TryAcquire"
	case Release:
		return "Release"
	case Expire:
		return "Expire"
	}
	return fmt.Sprintf("LockOp(%d)", uint8(op))
}

// LockInput is an operation of a contend.Lock or contend.Semaphore:
// Acquire or TryAcquire of N permits (a lock ignores N), or Release of the
// lease whose fencing token is Token.
type LockInput struct {
	Op    LockOp
	N     int64
	Token uint64
}

// LockOutput is how a lock or semaphore operation ended, with the granted
// lease's fencing token when an acquire is Done. An Acquire that failed
// because its context ended holds nothing and changes nothing; callers
// leave it out of the history.
type LockOutput struct {
	Outcome Outcome
	Token   uint64
}

// lockState is the sequential lock: free, or held by the lease with token
// holder, and the largest token granted so far. A lease granted with an
// unknown outcome holds with token 0, which no Release names.
type lockState struct {
	held   bool
	holder uint64
	last   uint64
}

// Lock is the model of a contend.Lock with fencing tokens:
//   - Acquire or TryAcquire Done(t) only when the lock is free and t is
//     greater than every token granted before (in the linearization
//     order), and the lock is then held by t;
//   - TryAcquire Held only while the lock is held (a TryAcquire that fails
//     on a free lock is Illegal);
//   - Release(t) Done only while t holds it, which frees it; NotHeld only
//     when t does not hold it;
//   - Expire(t) frees the lock if t holds it, and is always legal.
//
// An acquire of unknown outcome takes a free lock (with an unknown token,
// at least one more than the last) or, on a held lock, nothing; a release
// of unknown outcome frees the lock if its token held it.
var Lock = NewLock(Fenced)

// UnfencedLock is Lock for a lock that hands out no fencing token
// (harness's NoFencing): the token of an operation only names its lease
// (the recorder gives such leases names of its own), so Done(t) needs a
// free lock, not a t greater than every token before.
var UnfencedLock = NewLock(0)

// LockRules are the parts of contend.Lock's contract a lock keeps, beyond
// exclusion, which every lock keeps.
type LockRules uint8

const (
	// Fenced: tokens strictly increase from holder to holder.
	Fenced LockRules = 1 << iota
	// WeakTryAcquire: TryAcquire may report Held while no lease is live
	// or about to be: a lock that hands itself to a waiter whose context
	// has ended (the hand-off deviation), or a quorum lock whose
	// contenders split the votes so that none holds it. The model then
	// accepts Held at any time; a Done still needs a free lock.
	WeakTryAcquire
)

// NewLock returns the lock model with rules: Lock is NewLock(Fenced).
func NewLock(rules LockRules) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return lockState{} },
		Step: func(state, input, output any) (bool, any) {
			return lockStep(rules, state.(lockState), input.(LockInput), output.(LockOutput))
		},
		DescribeOperation: describeLockOp,
		DescribeState: func(state any) string {
			s := state.(lockState)
			switch {
			case !s.held:
				return fmt.Sprintf("free (last token %d)", s.last)
			case s.holder == 0:
				return fmt.Sprintf("held by an unknown lease (last token %d)", s.last)
			}
			return fmt.Sprintf("held by token %d", s.holder)
		},
	}
}

func lockStep(rules LockRules, s lockState, in LockInput, out LockOutput) (bool, any) {
	fenced := rules&Fenced != 0
	switch in.Op {
	case Acquire, TryAcquire:
		switch out.Outcome {
		case Done:
			if s.held || fenced && out.Token <= s.last {
				return false, s
			}
			last := s.last
			if fenced {
				last = out.Token
			}
			return true, lockState{held: true, holder: out.Token, last: last}
		case Held:
			return in.Op == TryAcquire && (s.held || rules&WeakTryAcquire != 0), s
		case Unknown:
			if s.held {
				return true, s
			}
			return true, lockState{held: true, last: s.last + 1}
		}
	case Release, Expire:
		holds := s.held && s.holder == in.Token && in.Token != 0
		switch {
		case in.Op == Expire, out.Outcome == Unknown:
			if holds {
				return true, lockState{last: s.last}
			}
			return true, s
		case out.Outcome == Done:
			if !holds {
				return false, s
			}
			return true, lockState{last: s.last}
		case out.Outcome == NotHeld:
			return !holds, s
		}
	}
	return false, s
}

func describeLockOp(input, output any) string {
	in, out := input.(LockInput), output.(LockOutput)
	call := in.Op.String()
	switch {
	case in.Op == Release, in.Op == Expire:
		call = fmt.Sprintf("%s(%d)", in.Op, in.Token)
	case in.N > 0:
		call = fmt.Sprintf("%s(%d)", call, in.N)
	}
	if (in.Op == Acquire || in.Op == TryAcquire) && out.Outcome == Done {
		return fmt.Sprintf("%s -> token %d", call, out.Token)
	}
	return fmt.Sprintf("%s -> %s", call, out.Outcome)
}
