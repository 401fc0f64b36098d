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
	zeros := map[string]any{"NaiveLock": &NaiveLock{}, "NaiveSemaphore": &NaiveSemaphore{}}
	options := []string{"NaiveOption"}
	var covered []string
	for name, v := range zeros {
		covered = append(covered, name)
		t.Run(name, func(t *testing.T) { redistest.CheckZero(t, v) })
	}
	assert.ElementsMatch(t, redistest.ExportedTypes(t, "."), append(covered, options...), "a new exported type needs a zero-value check")
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
