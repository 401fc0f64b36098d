package keyed_test

import (
	"fmt"
	"time"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/keyed"
)

// A per-client limiter in a server: one exact bucket per key (here a
// client's address), idle keys forgotten without changing any decision.
func ExampleLimiter() {
	clock := contend.NewManualClock(0)
	perClient, err := keyed.New[string](contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clock})
	if err != nil {
		panic(err)
	}
	for range 3 {
		fmt.Print(perClient.Allow("10.0.0.1"), " ")
	}
	fmt.Println(perClient.Allow("10.0.0.2")) // another client has its own bucket
	d, _ := perClient.Delay("10.0.0.1", 1)
	fmt.Println("10.0.0.1: retry after", d)
	clock.Advance(time.Second)
	fmt.Println(perClient.Allow("10.0.0.1"))
	// Output:
	// true true false true
	// 10.0.0.1: retry after 1s
	// true
}
