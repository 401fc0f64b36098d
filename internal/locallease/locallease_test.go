package locallease

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

type counter struct{ released, arg atomic.Uint64 }

func (c *counter) ReleaseLease(arg uint64) { c.released.Add(1); c.arg.Store(arg) }
func (c *counter) LeaseName() string       { return "test" }

func TestLease(t *testing.T) {
	ctx := context.Background()
	var c counter
	l := New(&c, 7, 42)
	assert.Equal(t, uint64(42), l.Token())
	ttl, expires := l.TTL()
	assert.False(t, expires)
	assert.Zero(t, ttl)
	assert.ErrorIs(t, l.Extend(ctx, 0), ErrBadTTL)
	assert.NoError(t, l.Extend(ctx, 1))
	require.NoError(t, l.Release(ctx))
	assert.Equal(t, uint64(1), c.released.Load())
	assert.Equal(t, uint64(7), c.arg.Load(), "ReleaseLease gets the lease's arg")
	assert.ErrorIs(t, l.Release(ctx), contend.ErrNotHeld)
	assert.ErrorIs(t, l.Extend(ctx, 1), contend.ErrNotHeld)
	assert.Equal(t, uint64(1), c.released.Load(), "a second Release gives nothing back")
}

func TestConcurrentReleaseGivesBackOnce(t *testing.T) {
	var c counter
	l := New(&c, 0, 1)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if l.Release(context.Background()) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1), ok.Load())
	assert.Equal(t, uint64(1), c.released.Load())
}
