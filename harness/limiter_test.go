package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

// TestExactBucketsAreLimiters: every exact bucket of the lab (references
// aside) is a contend.Limiter, so that a server can wait on it and quote a
// Retry-After; internal/bucketcore's tests hold them to its semantics.
// Approximate ones are not (pershard's documentation says why).
func TestExactBucketsAreLimiters(t *testing.T) {
	var limiters []string
	for _, impl := range Buckets() {
		b, err := impl.New(contend.BucketConfig{Capacity: 1, Rate: 1})
		require.NoError(t, err, impl.Name)
		_, ok := b.(contend.Limiter)
		if impl.Guarantee == Exact && !impl.Reference {
			assert.True(t, ok, "%s is exact but not a contend.Limiter", impl.Name)
		}
		if ok {
			limiters = append(limiters, impl.Name)
		}
	}
	assert.Equal(t, []string{"mutex", "reentrant", "rwmutex", "atomic"}, limiters)
}
