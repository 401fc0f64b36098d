package contend

import (
	"fmt"
	"math"
	"reflect"

	"github.com/contend-lab/contend/refill"
)

// Limits of a BucketConfig. They are the limits of the integer fixed-point
// representation in package refill; see its documentation for why.
const (
	MaxCapacity = refill.MaxCapacity // 2^62 tokens
	MinRate     = refill.MinRate     // one token per 2^62 ns, about 146 years
	MaxRate     = refill.MaxRate     // one token per nanosecond
	MaxBurst    = refill.MaxBurst    // Capacity / Rate at most 2^62 ns, about 146 years
)

// BucketConfig configures a token bucket.
type BucketConfig struct {
	// Capacity is the most tokens the bucket holds, and the largest request
	// it can grant. The bucket starts full. 1 <= Capacity <= MaxCapacity,
	// and Capacity / Rate (the time to refill from empty) at most MaxBurst.
	Capacity int64
	// Rate is the refill rate in tokens per second, MinRate <= Rate <= MaxRate.
	// It is converted once, at construction, to integer fixed point (see
	// package refill); the lab's own buckets use no floating point afterwards.
	Rate float64
	// Clock is the bucket's time source. A nil Clock means DefaultClock.
	Clock Clock
}

// ConfigError reports an invalid BucketConfig field, or an invalid
// semaphore capacity (Of "Semaphore").
type ConfigError struct {
	Field  string // "Capacity", "Rate" or "Clock"
	Value  any    // the rejected value
	Reason string
	Of     string // what Field belongs to; "" means BucketConfig
}

func (e *ConfigError) Error() string {
	of := e.Of
	if of == "" {
		of = "BucketConfig"
	}
	return fmt.Sprintf("contend: invalid %s.%s %v: %s", of, e.Field, e.Value, e.Reason)
}

// CheckSemaphoreCapacity returns a *ConfigError (Of "Semaphore", Field
// "Capacity") unless 1 <= capacity <= most, the largest capacity a
// semaphore implementation can represent.
func CheckSemaphoreCapacity(capacity, most int64) error {
	switch {
	case capacity <= 0:
		return &ConfigError{Field: "Capacity", Value: capacity, Reason: "must be at least 1", Of: "Semaphore"}
	case capacity > most:
		return &ConfigError{Field: "Capacity", Value: capacity, Reason: fmt.Sprintf("must be at most %d", most), Of: "Semaphore"}
	}
	return nil
}

// Validate reports the first invalid field of c as a *ConfigError, or nil.
func (c BucketConfig) Validate() error {
	if _, err := c.Limit(); err != nil {
		return err
	}
	// A Clock that is a nil pointer (a nil *ManualClock, say) would panic on
	// the first reading.
	if v := reflect.ValueOf(c.Clock); c.Clock != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		return &ConfigError{Field: "Clock", Value: fmt.Sprintf("(%T)(nil)", c.Clock), Reason: "is a nil pointer; leave Clock nil for DefaultClock"}
	}
	return nil
}

// Limit validates Capacity and Rate and returns them as a refill.Limit.
func (c BucketConfig) Limit() (refill.Limit, error) {
	switch {
	case c.Capacity <= 0:
		return refill.Limit{}, &ConfigError{Field: "Capacity", Value: c.Capacity, Reason: "must be at least 1"}
	case c.Capacity > MaxCapacity:
		return refill.Limit{}, &ConfigError{Field: "Capacity", Value: c.Capacity, Reason: fmt.Sprintf("must be at most %d (2^62)", int64(MaxCapacity))}
	case math.IsNaN(c.Rate):
		return refill.Limit{}, &ConfigError{Field: "Rate", Value: c.Rate, Reason: "is not a number"}
	case math.IsInf(c.Rate, 0):
		return refill.Limit{}, &ConfigError{Field: "Rate", Value: c.Rate, Reason: "must be finite"}
	case c.Rate <= 0:
		return refill.Limit{}, &ConfigError{Field: "Rate", Value: c.Rate, Reason: "must be positive"}
	case c.Rate < MinRate:
		return refill.Limit{}, &ConfigError{Field: "Rate", Value: c.Rate, Reason: fmt.Sprintf("is below the smallest representable rate %v tokens/s (one token per 2^62 ns)", MinRate)}
	case c.Rate > MaxRate:
		return refill.Limit{}, &ConfigError{Field: "Rate", Value: c.Rate, Reason: fmt.Sprintf("is above the largest representable rate %v tokens/s (one token per ns); count in larger units", MaxRate)}
	}
	l, err := refill.New(uint64(c.Capacity), c.Rate)
	if err != nil { // only capacity / rate is left to reject
		return refill.Limit{}, &ConfigError{Field: "Capacity", Value: c.Capacity,
			Reason: fmt.Sprintf("at %v tokens/s takes more than 2^62 ns (about 146 years) to refill; the most is Rate × 2^62 ns", c.Rate)}
	}
	return l, nil
}

// ClockOrDefault returns c.Clock, or DefaultClock when it is nil.
func (c BucketConfig) ClockOrDefault() Clock {
	if c.Clock == nil {
		return DefaultClock
	}
	return c.Clock
}
