package redislab

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/contend-lab/contend/internal/redistest"
)

// Every exported type's zero value refuses at once with
// contend.ErrNotConstructed, and a nil option is ignored.
func TestZeroValues(t *testing.T) {
	redistest.ZeroValues(t, map[string]any{"Lock": &Lock{}, "Redlock": &Redlock{}, "Semaphore": &Semaphore{}, "Bucket": &Bucket{}}, "RedlockOption")
	var none RedlockOption
	c := NewClient("127.0.0.1:1")
	defer c.Close()
	_, err := NewRedlock(nil, "k", time.Second, none)
	assert.Error(t, err)
	r, err := NewRedlock([]*redis.Client{c}, "k", time.Second, none)
	assert.NoError(t, err)
	assert.Equal(t, 1, r.Quorum())
	assert.Zero(t, (&Redlock{}).Quorum())
}
