package linearize

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// RegisterInput is an operation of a fenced register: Write(Value) carrying
// the writer's fencing Token, or Read when Read is true.
type RegisterInput struct {
	Read  bool
	Token uint64
	Value int64
}

// RegisterOutput is how a register operation ended: a write Done or
// Rejected, a read Done with the Value it returned, or Unknown.
type RegisterOutput struct {
	Outcome Outcome
	Value   int64
}

// registerState is the register's value and the largest token it has
// accepted a write from.
type registerState struct {
	seen  uint64
	value int64
}

// Register is the model of the resource a fencing lock protects: a
// register, starting at 0, that accepts a write only if its token is at
// least the largest token it has accepted (a holder may write several
// times) and rejects it otherwise:
//   - Write(t, v) Done only when t >= the largest accepted token, and the
//     register then holds v; Rejected only when t is smaller;
//   - Read Done(v) only when the register holds v.
//
// A write of unknown outcome is applied where the checker places it if its
// token would be accepted there.
var Register = porcupine.Model{
	Init: func() any { return registerState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(registerState), input.(RegisterInput), output.(RegisterOutput)
		if in.Read {
			return out.Outcome == Unknown || out.Outcome == Done && out.Value == s.value, s
		}
		accepts := in.Token >= s.seen
		switch out.Outcome {
		case Done:
			if !accepts {
				return false, s
			}
			return true, registerState{seen: in.Token, value: in.Value}
		case Rejected:
			return !accepts, s
		case Unknown:
			if accepts {
				return true, registerState{seen: in.Token, value: in.Value}
			}
			return true, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(RegisterInput), output.(RegisterOutput)
		if in.Read {
			if out.Outcome == Done {
				return fmt.Sprintf("Read() -> %d", out.Value)
			}
			return "Read() -> " + out.Outcome.String()
		}
		return fmt.Sprintf("Write(token %d, %d) -> %s", in.Token, in.Value, out.Outcome)
	},
	DescribeState: func(state any) string {
		s := state.(registerState)
		return fmt.Sprintf("%d (token %d)", s.value, s.seen)
	},
}
