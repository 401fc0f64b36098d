package linearize

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// CounterInput is an operation of a contend.Counter: Add(Delta), or Load
// when Load is true.
type CounterInput struct {
	Load  bool
	Delta int64
}

// CounterOutput is what a counter operation returned: Load's Value, or
// nothing for Add. Unknown marks an operation whose outcome was never
// learned.
type CounterOutput struct {
	Value   int64
	Unknown bool
}

// Counter is the model of a contend.Counter: one int64, starting at 0.
// Add adds its delta (wrapping, as int64 addition does); Load returns the
// value. An Add of unknown outcome is applied where the checker places it,
// which may be after every other operation.
var Counter = porcupine.Model{
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		v, in, out := state.(int64), input.(CounterInput), output.(CounterOutput)
		if in.Load {
			return out.Unknown || out.Value == v, v
		}
		return true, v + in.Delta
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(CounterInput), output.(CounterOutput)
		switch {
		case in.Load && out.Unknown:
			return "Load() -> unknown"
		case in.Load:
			return fmt.Sprintf("Load() -> %d", out.Value)
		case out.Unknown:
			return fmt.Sprintf("Add(%d) -> unknown", in.Delta)
		}
		return fmt.Sprintf("Add(%d)", in.Delta)
	},
	DescribeState: func(state any) string { return fmt.Sprint(state.(int64)) },
}
