// Package reference: STUB.
package reference

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/mutex"
)

// NewXsyncCounter is a stub.
func NewXsyncCounter() contend.Counter { return mutex.NewCounter() }

// NewTimeRateBucket is a stub.
func NewTimeRateBucket(cfg contend.BucketConfig) (contend.Bucket, error) { return mutex.NewBucket(cfg) }
