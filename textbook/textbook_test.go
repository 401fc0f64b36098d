package textbook

import (
	"math/big"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
)

func TestBucket(t *testing.T) {
	b := New(2, 1, 0)
	assert.True(t, b.TryTake(0, 2))
	assert.False(t, b.TryTake(0, 1))
	assert.False(t, b.TryTake(999_999_999, 1), "one ns short")
	assert.True(t, b.TryTake(1_000_000_000, 1))
	assert.True(t, b.TryTake(10_000_000_000, 2), "capped at 2 after a long idle")
	assert.False(t, b.TryTake(10_500_000_000, 1), "the partial token was forfeited")
	assert.False(t, b.TryTake(5, 1), "a reading before the last earns nothing")
}

// TestWindowExcess: the window check can fail. Two grants 0.5 s apart on
// capacity 1 at 1/s exceed the bound by half a token; the textbook pattern
// meets it exactly.
func TestWindowExcess(t *testing.T) {
	over := WindowExcess([]Grant{{0, 1}, {1_500_000_000, 1}, {2_000_000_000, 1}}, 1, big.NewRat(1, 1))
	assert.Equal(t, big.NewRat(1, 2), over, "the old grid's grant at 2 s")
	exact := WindowExcess([]Grant{{0, 1}, {1_500_000_000, 1}, {2_900_000_000, 1}}, 1, big.NewRat(1, 1))
	assert.Zero(t, exact.Sign(), "%s", exact.FloatString(3))
	assert.Equal(t, big.NewRat(-1, 1), WindowExcess(nil, 1, big.NewRat(1, 1)))
}

// TestReplayCatches: Replay reports an over-grant, a wrong denial and an
// impossible request granted.
func TestReplayCatches(t *testing.T) {
	c := Case{Name: "c", Capacity: 1, Rate: 1, Gaps: []time.Duration{300 * time.Millisecond}, Sizes: []int64{1}}
	always := func(now, n int64) bool { return n > 0 && n <= 1 }
	res, err := Replay(c, nil, 0, 1, 50, 0, always)
	assert.NoError(t, err)
	assert.Positive(t, res.OverGrants)
	assert.Positive(t, res.WindowExcess)
	assert.NotEmpty(t, res.FirstWrong)
	res, err = Replay(c, nil, 0, 1, 50, 0, func(int64, int64) bool { return false })
	assert.NoError(t, err)
	assert.Positive(t, res.WrongDenials)
	_, err = Replay(c, nil, 0, 1, 200, 0, func(int64, int64) bool { return true })
	assert.ErrorContains(t, err, "granted on a bucket of capacity 1")
}

// TestModel: the porcupine model refuses a double grant at one reading and
// a denial of a full bucket, and accepts a denial ordered after a grant.
func TestModel(t *testing.T) {
	model := Model(1, 1, []int64{0}, 0)
	twice := []porcupine.Operation{
		{ClientId: 0, Input: Request{N: 1}, Call: 1, Output: true, Return: 2},
		{ClientId: 1, Input: Request{N: 1}, Call: 3, Output: true, Return: 4},
	}
	assert.Equal(t, porcupine.Illegal, porcupine.CheckOperationsTimeout(model, twice, time.Second))
	refused := []porcupine.Operation{{ClientId: 0, Input: Request{N: 1}, Call: 1, Output: false, Return: 2}}
	assert.Equal(t, porcupine.Illegal, porcupine.CheckOperationsTimeout(model, refused, time.Second))
	ok := []porcupine.Operation{
		{ClientId: 0, Input: Request{N: 1}, Call: 1, Output: true, Return: 4},
		{ClientId: 1, Input: Request{N: 1}, Call: 2, Output: false, Return: 3},
	}
	assert.Equal(t, porcupine.Ok, porcupine.CheckOperationsTimeout(model, ok, time.Second))
	// A grant later in the clock: legal only at the reading 1e9.
	later := Model(1, 1, []int64{0, 1e9}, 0)
	refill := []porcupine.Operation{
		{ClientId: 0, Input: Request{N: 1, From: 0, To: 0}, Call: 1, Output: true, Return: 2},
		{ClientId: 0, Input: Request{N: 1, From: 0, To: 1e9}, Call: 3, Output: true, Return: 4},
	}
	assert.Equal(t, porcupine.Ok, porcupine.CheckOperationsTimeout(later, refill, time.Second))
}
