package redislab

import (
	"context"
	"fmt"
	"math/big"

	"github.com/contend-lab/contend/internal/redisx"

	"github.com/contend-lab/contend"
	"github.com/redis/go-redis/v9"
)

// gcraScript is GCRA (the generic cell rate algorithm) on the server's
// clock, in integer nanoseconds. Lua's numbers are doubles; every value
// here is an integer below 2^53, so double arithmetic on them is exact.
//
// State (HASH KEYS[1]): e = epoch (server seconds), tat = the theoretical
// arrival time in ns since the epoch. now is TIME (seconds, microseconds)
// as ns since the epoch: at most 4e6 s (46 days) past it before the epoch
// moves forward (rebasing tat), so now < 4.1e15 and tat <= now + burst <
// 4.1e15 + 2^52 < 2^53.
//
// ARGV 1 n tokens, 2 emission interval T in ns, 3 burst = capacity×T in ns;
// 4 and 5, only in tests, a reading (seconds, nanoseconds) to use instead of
// TIME. Grant iff max(tat, now) + n×T − now <= burst; a grant stores the new
// tat and expires the key when the bucket is full again (a missing key is a
// full bucket). Returns 1 granted, 0 refused.
var gcraScript = newScript(`
local sec, sub
if ARGV[4] then
  sec, sub = tonumber(ARGV[4]), tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  sec, sub = tonumber(t[1]), tonumber(t[2]) * 1000
end
local st = redis.call('HMGET', KEYS[1], 'e', 'tat')
local epoch, tat = tonumber(st[1]), tonumber(st[2])
if not epoch or not tat then
  epoch, tat = sec, 0
elseif sec - epoch > 4000000 then
  tat = tat - (sec - epoch) * 1000000000
  if tat < 0 then tat = 0 end
  epoch = sec
end
local now = (sec - epoch) * 1000000000 + sub
if tat < now then tat = now end
local nt = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if nt - now > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'e', epoch, 'tat', nt)
local ttl = math.floor((nt - now) / 1000000) + 1
if ARGV[4] then ttl = 3600000 end -- a test's readings are not the server's clock, which expires keys
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// maxBurstNanos bounds capacity×T so that tat stays below 2^53 (see gcraScript).
const maxBurstNanos = 1 << 52

// DefaultTakeTimeout bounds each TryTake.
const DefaultTakeTimeout = redisx.DefaultTakeTimeout

// Bucket is a contend.Bucket whose state lives in Redis: GCRA in one Lua
// script per decision (one round trip), on the server's clock, in integer
// arithmetic. TryTake fails closed: on any error it returns false
// (LastError tells why).
//
// Every decision is the textbook token bucket's (package textbook) at the
// server's reading, at the rate 1e9/T, T = ceil(1e9/Rate) ns: Rate itself
// when 1e9/Rate is whole nanoseconds (1/s, 10/s, 1000/s...), otherwise a
// rate lower by less than one part in T (TestBucketMatchesTextbook). Over
// any window of the server's clock it grants at most Capacity + Rate × W,
// whatever the number of clients, while the server keeps its data and its
// clock does not step forward (TIME is its wall clock). A decision is sent
// at most once (never retried by go-redis): a lost reply can waste tokens
// but never spend them twice.
//
// Not guaranteed: cfg.Clock is not used (the server's clock is); the
// bucket starts full at the first request, not at NewBucket; a restart
// without persistence refills it; Capacity/Rate may not exceed 2^52 ns
// (about 52 days), where Lua's numbers stay exact integers. The zero value
// refuses every request (TryTake false, LastError wraps
// contend.ErrNotConstructed): use NewBucket.
type Bucket struct {
	roundTrips
	fc       redisx.FailClosed
	c        redis.UniversalClient
	key      string
	cap      int64
	interval int64 // T, ns
	burst    int64 // cap × T, ns
}

// NewBucket returns a Bucket on key with cfg's Capacity and Rate, on the
// caller's client (see the package doc). An invalid cfg is a
// *contend.ConfigError, as is one whose Capacity/Rate exceeds 2^52 ns.
func NewBucket(client redis.UniversalClient, key string, cfg contend.BucketConfig) (*Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := emissionInterval(cfg.Rate)
	if err != nil {
		return nil, err
	}
	if t > maxBurstNanos/cfg.Capacity {
		return nil, &contend.ConfigError{Field: "Capacity", Value: cfg.Capacity,
			Reason: fmt.Sprintf("Capacity/Rate is %d × %d ns, above 2^52 ns (about 52 days), the exact range of the Redis bucket's Lua arithmetic", cfg.Capacity, t)}
	}
	if _, err := checkClient("NewBucket", "Bucket", client, key); err != nil {
		return nil, err
	}
	return &Bucket{c: client, key: key, cap: cfg.Capacity, interval: t, burst: cfg.Capacity * t}, nil
}

// emissionInterval returns ceil(1e9/rate) ns, computed exactly.
func emissionInterval(rate float64) (int64, error) {
	r := new(big.Rat).SetFloat64(rate)
	if r == nil || r.Sign() <= 0 {
		return 0, &contend.ConfigError{Field: "Rate", Value: rate, Reason: "must be positive and finite"}
	}
	q := new(big.Rat).Quo(big.NewRat(1e9, 1), r)
	t := new(big.Int).Quo(q.Num(), q.Denom())
	if new(big.Rat).SetInt(t).Cmp(q) < 0 {
		t.Add(t, big.NewInt(1))
	}
	if !t.IsInt64() || t.Int64() > maxBurstNanos {
		return 0, &contend.ConfigError{Field: "Rate", Value: rate,
			Reason: "one token takes more than 2^52 ns (about 52 days), beyond the Redis bucket's exact range"}
	}
	return t.Int64(), nil
}

// TryTakeContext takes n tokens at once, or none, in one round trip bounded
// by ctx. n <= 0 or n > Capacity returns (false, nil) without a round trip.
// An error means the outcome is unknown to the caller: tokens may have
// been taken, and must be counted as not granted.
func (b *Bucket) TryTakeContext(ctx context.Context, n int64) (bool, error) {
	return b.take(ctx, n)
}

// take is TryTakeContext; at, for tests only, is a reading (seconds,
// nanoseconds) the script uses instead of the server's TIME.
func (b *Bucket) take(ctx context.Context, n int64, at ...int64) (bool, error) {
	if b.c == nil {
		return false, notConstructed("Bucket.TryTake")
	}
	if n <= 0 || n > b.cap {
		return false, nil
	}
	args := []any{n, b.interval, b.burst}
	for _, x := range at {
		args = append(args, x)
	}
	v, err := gcraScript.run(b.with(ctx), b.c, true, []string{b.key}, args...).Int64()
	if err != nil {
		return false, fmt.Errorf("redislab: Bucket.TryTake: %w", err)
	}
	return v == 1, nil
}

// TryTake is TryTakeContext bounded by DefaultTakeTimeout (250 ms). It fails
// closed: on an error it returns false and records the error (LastError).
func (b *Bucket) TryTake(n int64) bool { return b.fc.Take(b, DefaultTakeTimeout, n) }

// LastError returns the error of the last TryTake that failed, or nil if
// none has.
func (b *Bucket) LastError() error { return b.fc.LastError() }
