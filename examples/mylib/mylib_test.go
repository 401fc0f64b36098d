package mylib_test

import (
	"testing"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/contendtest"

	"example.com/mylib"
)

// TestCounter holds the striped counter to the Counter contract: no lost
// update, exact sequential sums; its Load is declared not linearizable.
func TestCounter(t *testing.T) {
	contendtest.Counter(t, func() contend.Counter { return new(mylib.Counter) }, contendtest.LoadNotLinearizable())
}

// TestLock holds the lock to the Lock contract, FIFO included.
func TestLock(t *testing.T) {
	contendtest.Lock(t, func() contend.Lock { return mylib.NewLock() }, contendtest.FIFO())
}
