// Package antipattern: STUB.
package antipattern

import (
	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/mutex"
)

// NewPerGoroutineBucket is a stub.
func NewPerGoroutineBucket(cfg contend.BucketConfig) (contend.Bucket, error) {
	return mutex.NewBucket(cfg)
}

// NewWallClockBucket is a stub.
func NewWallClockBucket(cfg contend.BucketConfig) (contend.Bucket, error) {
	return mutex.NewBucket(cfg)
}

// NewFloatBucket is a stub.
func NewFloatBucket(cfg contend.BucketConfig) (contend.Bucket, error) { return mutex.NewBucket(cfg) }

// NewWallClockBucketWith is a stub.
func NewWallClockBucketWith(cfg contend.BucketConfig, wall func() int64) (contend.Bucket, error) {
	return mutex.NewBucket(cfg)
}
