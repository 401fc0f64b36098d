package mutex

import "github.com/contend-lab/contend"

// STUB: the reentrant wrapper is being written.

// NewReentrantCounter is a stub.
func NewReentrantCounter() contend.Counter { return NewCounter() }

// NewReentrantBucket is a stub.
func NewReentrantBucket(cfg contend.BucketConfig) (contend.Bucket, error) { return NewBucket(cfg) }
