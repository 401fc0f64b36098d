package contendtest_test

import (
	"fmt"
	"sync/atomic"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"
)

// atomicCounter is a counter written outside the lab: one atomic.Int64.
type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) Add(delta int64) { c.n.Add(delta) }
func (c *atomicCounter) Load() int64     { return c.n.Load() }

func newAtomicCounter() contend.Counter { return new(atomicCounter) }

// ExampleCounter checks a counter written outside the lab. In a test, one
// line runs every check as a subtest:
//
//	func TestAtomicCounter(t *testing.T) { contendtest.Counter(t, newAtomicCounter) }
//
// Outside a test, as here, each check runs on its own, with a nil
// *testing.T.
func ExampleCounter() {
	for _, c := range contendtest.CounterChecks() {
		if err := c.Run(nil, newAtomicCounter); err != nil {
			fmt.Println(c.Name(), err)
		} else {
			fmt.Println(c.Name(), "ok")
		}
	}
	// Output:
	// starts-at-zero ok
	// exact-sequential ok
	// wraps-like-int64 ok
	// stress ok
	// linearizable ok
}
