// Package pershard: STUB, to be replaced by the per-P sharded strategy.
package pershard

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/atomic"
)

// NewCounter is a stub.
func NewCounter() contend.Counter { return atomic.NewCounter() }

// NewBucket is a stub.
func NewBucket(cfg contend.BucketConfig) (contend.Bucket, error) { return atomic.NewBucket(cfg) }

// UnderGrantBound is a stub.
func UnderGrantBound(cfg contend.BucketConfig) int64 { return 0 }
