package redisnaive

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/internal/redistest"
	"github.com/contend-lab/contend/internal/redisx"
)

// Every exported type's zero value refuses at once with
// contend.ErrNotConstructed, and a nil option is ignored.
func TestZeroValues(t *testing.T) {
	redistest.ZeroValues(t, map[string]any{"NaiveLock": &NaiveLock{}, "NaiveSemaphore": &NaiveSemaphore{}}, "NaiveOption")
	c := redisx.NewClient("127.0.0.1:1")
	defer c.Close()
	var none NaiveOption
	_, err := NewNaiveLock(c, "k", time.Second, none)
	assert.NoError(t, err)
	_, err = NewNaiveSemaphore(c, "k", 0)
	var ce *contend.ConfigError
	assert.ErrorAs(t, err, &ce)
	assert.Empty(t, redistest.RepeatedPrefix(err.Error()))
}
