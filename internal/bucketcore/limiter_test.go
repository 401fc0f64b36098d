package bucketcore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
	"github.com/contend-lab/contend/impls/cas"
	"github.com/contend-lab/contend/impls/mutex"
	"github.com/contend-lab/contend/impls/rwmutex"
	"github.com/contend-lab/contend/textbook"
)

// limiters are the lab's buckets that implement contend.Limiter, by their
// registry names.
var limiters = []struct {
	name string
	new  func(contend.BucketConfig) (contend.Limiter, error)
}{
	{"atomic", adapt(cas.NewBucket)},
	{"mutex", adapt(mutex.NewBucket)},
	{"reentrant", adapt(mutex.NewReentrantBucket)},
	{"rwmutex", adapt(rwmutex.NewBucket)},
}

func adapt[T contend.Limiter](f func(contend.BucketConfig) (T, error)) func(contend.BucketConfig) (contend.Limiter, error) {
	return func(cfg contend.BucketConfig) (contend.Limiter, error) {
		b, err := f(cfg)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

// forEach runs f for every Limiter, as a subtest.
func forEach(t *testing.T, f func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter)) {
	for _, impl := range limiters {
		t.Run(impl.name, func(t *testing.T) {
			f(t, func(cfg contend.BucketConfig) contend.Limiter {
				l, err := impl.new(cfg)
				require.NoError(t, err)
				return l
			})
		})
	}
}

const sec = int64(time.Second)

// TestAccessors: Capacity and Rate as configured, Tokens as spent and
// earned, on a ManualClock.
func TestAccessors(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		for _, rate := range []float64{1, 3, 1e9 / 7, 1234.5678} {
			clk := contend.NewManualClock(0)
			l := newL(contend.BucketConfig{Capacity: 5, Rate: rate, Clock: clk})
			assert.Equal(t, int64(5), l.Capacity())
			assert.Equal(t, rate, l.Rate())
			assert.Equal(t, int64(5), l.Tokens())
		}
		clk := contend.NewManualClock(0)
		l := newL(contend.BucketConfig{Capacity: 5, Rate: 2, Clock: clk})
		require.True(t, l.TryTake(4))
		assert.Equal(t, int64(1), l.Tokens())
		clk.Advance(time.Second)
		assert.Equal(t, int64(3), l.Tokens(), "two earned in 1 s")
		clk.Advance(499 * time.Millisecond)
		assert.Equal(t, int64(3), l.Tokens(), "whole tokens only")
		clk.Advance(time.Millisecond)
		assert.Equal(t, int64(4), l.Tokens())
		clk.Advance(time.Hour)
		assert.Equal(t, int64(5), l.Tokens(), "never above Capacity")
	})
}

// TestDelayAtTokenBoundaries: Delay is exact at token boundaries (1
// token/s: whole seconds), takes nothing, and agrees with TryTake.
func TestDelayAtTokenBoundaries(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		clk := contend.NewManualClock(1000)
		l := newL(contend.BucketConfig{Capacity: 3, Rate: 1, Clock: clk})
		steps := []struct {
			advance time.Duration
			take    int64 // TryTake(take) first, which must succeed, if > 0
			n       int64
			want    time.Duration
		}{
			{0, 0, 3, 0},
			{0, 3, 1, time.Second},
			{0, 0, 3, 3 * time.Second},
			{time.Second - 1, 0, 1, 1},
			{1, 0, 1, 0},
			{0, 0, 2, time.Second},
			{time.Second / 2, 0, 2, time.Second / 2},
			{time.Second / 2, 2, 1, time.Second},
			{time.Hour, 0, 3, 0},
		}
		for i, s := range steps {
			clk.Advance(s.advance)
			if s.take > 0 {
				require.True(t, l.TryTake(s.take), "step %d", i)
			}
			d, err := l.Delay(s.n)
			require.NoError(t, err)
			assert.Equal(t, s.want, d, "step %d: Delay(%d)", i, s.n)
			d2, _ := l.Delay(s.n)
			assert.Equal(t, d, d2, "step %d: Delay takes nothing", i)
			if d > 0 {
				assert.False(t, l.TryTake(s.n), "step %d: not yet", i)
			}
		}
	})
}

// TestImpossibleRequests: n <= 0 or n > Capacity is a *TokenError at once
// from Delay, Reserve and Wait (whatever the ctx), and a zero-value bucket
// refuses everything so.
func TestImpossibleRequests(t *testing.T) {
	zeros := map[string]contend.Limiter{
		"atomic": new(cas.Bucket), "mutex": new(mutex.Bucket), "reentrant": new(mutex.ReentrantBucket), "rwmutex": new(rwmutex.Bucket),
	}
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		l := newL(contend.BucketConfig{Capacity: 3, Rate: 1})
		zero := zeros[t.Name()[len("TestImpossibleRequests/"):]]
		require.NotNil(t, zero)
		for _, tc := range []struct {
			l       contend.Limiter
			n, capa int64
		}{{l, 0, 3}, {l, -1, 3}, {l, 4, 3}, {l, math.MinInt64, 3}, {l, math.MaxInt64, 3}, {zero, 1, 0}, {zero, 0, 0}} {
			want := &contend.TokenError{N: tc.n, Capacity: tc.capa}
			_, err := tc.l.Delay(tc.n)
			assert.Equal(t, want, err, "Delay(%d)", tc.n)
			r, err := tc.l.Reserve(tc.n)
			assert.Equal(t, want, err, "Reserve(%d)", tc.n)
			assert.Nil(t, r)
			start := time.Now()
			err = tc.l.Wait(context.Background(), tc.n)
			assert.Equal(t, want, err, "Wait(%d)", tc.n)
			assert.Less(t, time.Since(start), time.Second, "at once")
			assert.False(t, tc.l.TryTake(tc.n))
		}
		assert.Equal(t, int64(3), l.Tokens(), "nothing taken")
		assert.Zero(t, zero.Tokens())
		assert.Zero(t, zero.Capacity())
		assert.Zero(t, zero.Rate())
		assert.Contains(t, (&contend.TokenError{N: 4, Capacity: 3}).Error(), "cannot take 4 tokens from a bucket of capacity 3")
	})
}

// TestWaitReturnsAtDueTime: in a synctest bubble (DefaultClock follows its
// fake time), Wait returns exactly when the tokens are due.
func TestWaitReturnsAtDueTime(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		synctest.Test(t, func(t *testing.T) {
			l := newL(contend.BucketConfig{Capacity: 4, Rate: 2}) // a token every 500 ms
			for i, tc := range []struct {
				n    int64
				want time.Duration
			}{{4, 0}, {1, 500 * time.Millisecond}, {3, 1500 * time.Millisecond}, {4, 2 * time.Second}, {1, 500 * time.Millisecond}} {
				start := time.Now()
				require.NoError(t, l.Wait(context.Background(), tc.n), "step %d", i)
				assert.Equal(t, tc.want, time.Since(start), "step %d: Wait(%d)", i, tc.n)
				assert.Equal(t, int64(0), l.Tokens(), "step %d: the tokens were taken", i)
			}
		})
	})
}

// TestWaitOnManualClock: Wait on a ManualClock returns when Advance reaches
// the due time, not before, and blocks durably meanwhile.
func TestWaitOnManualClock(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		synctest.Test(t, func(t *testing.T) {
			clk := contend.NewManualClock(0)
			l := newL(contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk})
			require.True(t, l.TryTake(2))
			var done atomic.Bool
			go func() {
				assert.NoError(t, l.Wait(context.Background(), 2))
				done.Store(true)
			}()
			synctest.Wait()
			assert.False(t, done.Load(), "2 s to go")
			clk.Advance(2*time.Second - 1)
			synctest.Wait()
			assert.False(t, done.Load(), "1 ns to go")
			clk.Advance(1)
			synctest.Wait()
			assert.True(t, done.Load(), "due")
		})
	})
}

// TestWaitContext: a ctx done at the call, cancelled while waiting, or with
// a deadline before the tokens are due.
func TestWaitContext(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		t.Run("done at the call", func(t *testing.T) {
			l := newL(contend.BucketConfig{Capacity: 2, Rate: 1})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := l.Wait(ctx, 1)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, int64(2), l.Tokens(), "nothing booked, though the tokens were there")
		})
		t.Run("cancelled while waiting", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newL(contend.BucketConfig{Capacity: 2, Rate: 1})
				require.True(t, l.TryTake(2))
				ctx, cancel := context.WithCancel(context.Background())
				start := time.Now()
				time.AfterFunc(700*time.Millisecond, cancel)
				err := l.Wait(ctx, 2)
				require.ErrorIs(t, err, context.Canceled)
				assert.Contains(t, err.Error(), "Wait(2)")
				assert.Equal(t, 700*time.Millisecond, time.Since(start), "returns when ctx ends")
				assert.Equal(t, int64(0), l.Tokens(), "the booking was given back: 0.7 tokens earned")
				d, _ := l.Delay(1)
				assert.Equal(t, 300*time.Millisecond, d)
			})
		})
		t.Run("deadline before the tokens are due", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newL(contend.BucketConfig{Capacity: 2, Rate: 1})
				require.True(t, l.TryTake(2))
				ctx, cancel := context.WithTimeout(context.Background(), 1999*time.Millisecond)
				defer cancel()
				start := time.Now()
				err := l.Wait(ctx, 2)
				assert.Zero(t, time.Since(start), "at once")
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				var de *contend.DeadlineError
				if assert.ErrorAs(t, err, &de) {
					assert.Equal(t, contend.DeadlineError{N: 2, Delay: 2 * time.Second, Left: 1999 * time.Millisecond}, *de)
				}
				assert.Equal(t, int64(0), l.Tokens())
				d, _ := l.Delay(2)
				assert.Equal(t, 2*time.Second, d, "nothing booked")
			})
		})
		t.Run("deadline exactly at the due time", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newL(contend.BucketConfig{Capacity: 2, Rate: 1})
				require.True(t, l.TryTake(2))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				start := time.Now()
				assert.NoError(t, l.Wait(ctx, 2), "the tokens are due when ctx ends: they are the caller's")
				assert.Equal(t, 2*time.Second, time.Since(start))
				assert.Equal(t, int64(0), l.Tokens())
			})
		})
	})
}

// countingClock counts readings of the clock it wraps, which it hides from
// the Sleeper check unless sleeper is set.
type countingClock struct {
	c     contend.Clock
	reads atomic.Int64
}

// Now returns the wrapped clock's reading; after spinReads readings, a
// reading far in the future, which ends any wait (a spinning one would
// otherwise never let a synctest bubble's time move), and the test's count
// of readings fails.
func (c *countingClock) Now() int64 {
	if c.reads.Add(1) > spinReads {
		return math.MaxInt64 / 2
	}
	return c.c.Now()
}

const spinReads = 10_000

type countingSleeper struct{ countingClock }

func (c *countingSleeper) SleepUntil(ctx context.Context, t int64) error {
	return c.c.(contend.Sleeper).SleepUntil(ctx, t)
}

// TestWaitDoesNotSpin: a long Wait reads its clock a few times, not in a
// loop: on runtime timers (DefaultClock), on a Sleeper (ManualClock), and
// on a clock that lags behind the timers (one that never moves), where it
// backs off to one reading a second.
func TestWaitDoesNotSpin(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		t.Run("timers", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := &countingClock{c: contend.DefaultClock}
				l := newL(contend.BucketConfig{Capacity: 1, Rate: 1.0 / 3600, Clock: clk})
				require.True(t, l.TryTake(1))
				start := time.Now()
				before := clk.reads.Load()
				require.NoError(t, l.Wait(context.Background(), 1))
				assert.LessOrEqual(t, clk.reads.Load()-before, int64(4), "an hour's wait")
				assert.GreaterOrEqual(t, time.Since(start), time.Hour)
			})
		})
		t.Run("sleeper", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mc := contend.NewManualClock(0)
				clk := &countingSleeper{countingClock{c: mc}}
				l := newL(contend.BucketConfig{Capacity: 1, Rate: 1.0 / 1024, Clock: clk}) // 1024 s a token
				require.True(t, l.TryTake(1))
				var done atomic.Bool
				go func() {
					for !done.Load() {
						synctest.Wait()
						mc.Advance(time.Second)
					}
				}()
				before := clk.reads.Load()
				require.NoError(t, l.Wait(context.Background(), 1))
				done.Store(true)
				assert.Equal(t, int64(1024*sec), mc.Now(), "woken by the advance that made the token due")
				assert.LessOrEqual(t, clk.reads.Load()-before, int64(4), "1024 advances")
			})
		})
		t.Run("frozen clock", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mc := contend.NewManualClock(0)
				clk := &countingClock{c: mc} // a ManualClock hidden: not a Sleeper
				l := newL(contend.BucketConfig{Capacity: 1, Rate: 1, Clock: clk})
				require.True(t, l.TryTake(1))
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				r, err := l.Reserve(1) // the next Wait's token is due at 2 s
				require.NoError(t, err)
				mc.Advance(2*time.Second - 1) // and the clock stops 1 ns before it
				before := clk.reads.Load()
				assert.ErrorIs(t, l.Wait(ctx, 1), context.DeadlineExceeded)
				// 1 ns, 2 ns, 4 ns, ... up to a second (31 readings), then
				// one a second: about 90 readings in a minute.
				assert.LessOrEqual(t, clk.reads.Load()-before, int64(100), "a minute on a clock that never moves")
				assert.False(t, r.Cancel(), "due at 1 s")
			})
		})
	})
}

// TestCancel: a booking is given back exactly when nothing changed the
// state after it and its tokens are not yet due, else not at all.
func TestCancel(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		type step struct {
			op      string // "reserve", "cancel", "take", "advance"
			n       int64  // tokens; for cancel, the index of the reservation
			want    bool   // cancel's or take's result
			delay   time.Duration
			advance time.Duration
		}
		tests := []struct {
			name  string
			steps []step
			// after the steps: Delay(1) and Tokens
			delay1 time.Duration
			tokens int64
		}{
			{"last booking, not due", []step{
				{op: "reserve", n: 2, delay: 2 * time.Second},
				{op: "advance", advance: time.Second},
				{op: "cancel", n: 0, want: true},
			}, 0, 1},
			{"a second cancel does nothing", []step{
				{op: "reserve", n: 2, delay: 2 * time.Second},
				{op: "cancel", n: 0, want: true},
				{op: "cancel", n: 0, want: false},
			}, time.Second, 0},
			{"booked after: kept", []step{
				{op: "reserve", n: 2, delay: 2 * time.Second},
				{op: "reserve", n: 1, delay: 3 * time.Second},
				{op: "cancel", n: 0, want: false},
			}, 4 * time.Second, -3},
			{"last in, first out: both exact", []step{
				{op: "reserve", n: 2, delay: 2 * time.Second},
				{op: "reserve", n: 1, delay: 3 * time.Second},
				{op: "cancel", n: 1, want: true},
				{op: "cancel", n: 0, want: true},
			}, time.Second, 0},
			{"due already", []step{
				{op: "reserve", n: 2, delay: 2 * time.Second},
				{op: "advance", advance: 2 * time.Second},
				{op: "cancel", n: 0, want: false},
			}, time.Second, 0},
			{"granted now: never given back", []step{
				{op: "advance", advance: time.Hour},
				{op: "reserve", n: 2, delay: 0},
				{op: "cancel", n: 0, want: false},
			}, time.Second, 0},
			{"a stale second cancel cannot undo a later booking", []step{
				{op: "reserve", n: 2, delay: 2 * time.Second},
				{op: "cancel", n: 0, want: true},
				{op: "reserve", n: 2, delay: 2 * time.Second}, // the same states as the first
				{op: "cancel", n: 0, want: false},
			}, 3 * time.Second, -2},
			{"denials change nothing", []step{
				{op: "reserve", n: 1, delay: time.Second},
				{op: "take", n: 1, want: false},
				{op: "cancel", n: 0, want: true},
				{op: "take", n: 1, want: false},
			}, time.Second, 0},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				clk := contend.NewManualClock(0)
				l := newL(contend.BucketConfig{Capacity: 2, Rate: 1, Clock: clk})
				require.True(t, l.TryTake(2)) // empty at 0
				var rs []contend.Reservation
				for i, s := range tc.steps {
					switch s.op {
					case "reserve":
						r, err := l.Reserve(s.n)
						require.NoError(t, err)
						assert.Equal(t, s.delay, r.Delay(), "step %d: Reservation.Delay", i)
						rs = append(rs, r)
					case "cancel":
						assert.Equal(t, s.want, rs[s.n].Cancel(), "step %d: Cancel of reservation %d", i, s.n)
					case "take":
						assert.Equal(t, s.want, l.TryTake(s.n), "step %d", i)
					case "advance":
						clk.Advance(s.advance)
					}
				}
				d, err := l.Delay(1)
				require.NoError(t, err)
				assert.Equal(t, tc.delay1, d, "Delay(1) after")
				assert.Equal(t, tc.tokens, l.Tokens(), "Tokens after")
			})
		}
	})
}

// TestLargeWaiterNotStarved: a Wait for the whole capacity is booked at
// once; a stream of TryTake(1) cannot take its tokens, and it returns on
// time.
func TestLargeWaiterNotStarved(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		synctest.Test(t, func(t *testing.T) {
			l := newL(contend.BucketConfig{Capacity: 10, Rate: 10})
			require.True(t, l.TryTake(10))
			start := time.Now()
			var waited time.Duration
			done := make(chan struct{})
			go func() {
				defer close(done)
				assert.NoError(t, l.Wait(context.Background(), 10))
				waited = time.Since(start)
			}()
			synctest.Wait() // booked
			small := 0
			for i := 0; ; i++ {
				select {
				case <-done:
				default:
					if l.TryTake(1) {
						small++
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				break
			}
			assert.Equal(t, time.Second, waited, "the large request on time")
			assert.Zero(t, small, "no small request took a token before it")
			time.Sleep(100 * time.Millisecond)
			assert.True(t, l.TryTake(1), "then the small ones")
		})
	})
}

// TestWaitersShareExactly: 20 goroutines Wait for 200 tokens in all; they
// finish when the textbook bucket would have granted the last, and no
// window grants more than Capacity + Rate × W.
func TestWaitersShareExactly(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		synctest.Test(t, func(t *testing.T) {
			const capacity, rate, goroutines, each = 5, 10, 20, 10
			l := newL(contend.BucketConfig{Capacity: capacity, Rate: rate})
			start := time.Now()
			var mu sync.Mutex
			var at []time.Duration
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range each {
						assert.NoError(t, l.Wait(context.Background(), 1))
						mu.Lock()
						at = append(at, time.Since(start))
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			require.Len(t, at, goroutines*each)
			assert.Equal(t, time.Duration(goroutines*each-capacity)*time.Second/rate, time.Since(start))
			for i := range at {
				for j := range at {
					if at[j] < at[i] {
						continue
					}
					w := at[j] - at[i]
					in := 0
					for _, a := range at {
						if a >= at[i] && a <= at[j] {
							in++
						}
					}
					require.LessOrEqual(t, float64(in), capacity+rate*w.Seconds()+1e-9, "window [%v, %v]", at[i], at[j])
				}
			}
		})
	})
}

// grant is a grant in effect at a reading: a TryTake's, or a booking's at
// its due time.
type grant struct {
	at, n int64
	id    int // the reservation it came from, or -1
}

// textbookRun replays grants (in order of effect) through the textbook
// bucket and returns it with the reading of the last one.
func textbookRun(capacity int64, perNs *big.Rat, gs []grant) (*textbook.Bucket, int64) {
	b := textbook.NewRat(capacity, new(big.Rat).Mul(perNs, big.NewRat(1e9, 1)), 0)
	last := int64(0)
	for _, g := range gs {
		b.Spend(g.at, g.n)
		last = g.at
	}
	return b, last
}

// textbookDue returns the first reading >= from at which the textbook
// bucket b, last moved at last, holds n tokens.
func textbookDue(b *textbook.Bucket, last, from, n int64, perNs *big.Rat) *big.Rat {
	t0 := max(last, from)
	m := b.Margin(t0, n)
	if m.Sign() >= 0 {
		return new(big.Rat).SetInt64(t0)
	}
	wait := new(big.Rat).Quo(new(big.Rat).Neg(m), perNs)
	return wait.Add(wait, new(big.Rat).SetInt64(t0))
}

// TestBookingsAreTextbook is a differential test on a ManualClock: random
// TryTake, Reserve, Cancel and Delay calls against the textbook bucket fed
// the grants in effect (a booking's at its due time; an exact Cancel
// removes it). With a whole number of ns per token every answer is the
// textbook's exactly; otherwise a due time may be up to refill.Tolerance
// (1 ns) late, plus 1 ns for its own ceiling, and never early.
func TestBookingsAreTextbook(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		for _, cfg := range []struct {
			capacity int64
			rate     float64
			exact    bool
		}{{5, 1000, true}, {3, 1, true}, {7, 3, false}, {4, 1e9 / 7, false}, {10, 1234.5678, false}} {
			t.Run(fmt.Sprintf("capacity=%d/rate=%v", cfg.capacity, cfg.rate), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(cfg.capacity), 13))
				clk := contend.NewManualClock(rng.Int64N(1 << 40))
				start := clk.Now()
				l := newL(contend.BucketConfig{Capacity: cfg.capacity, Rate: cfg.rate, Clock: clk})
				perNs := new(big.Rat).Quo(new(big.Rat).SetFloat64(cfg.rate), big.NewRat(1e9, 1))
				tokenNs := int64(1e9 / cfg.rate)
				var gs []grant
				var rs []contend.Reservation
				tb, last := textbookRun(cfg.capacity, perNs, nil)
				var exactCancels, keptCancels, ahead, behindBooking int // what the run exercised
				add := func(g grant) {
					gs = append(gs, g)
					tb.Spend(g.at, g.n)
					last = g.at
				}
				checkDue := func(what string, got time.Duration, n int64) {
					now := clk.Now() - start
					want := textbookDue(tb, last, now, n, perNs)
					gotAt := new(big.Rat).SetInt64(now + int64(got))
					lateBy := new(big.Rat).Sub(gotAt, want)
					if cfg.exact {
						want.Num().Add(want.Num(), new(big.Int).Sub(want.Denom(), big.NewInt(1))) // ceiling
						wantNs := new(big.Int).Quo(want.Num(), want.Denom())
						require.Equal(t, wantNs.Int64(), now+int64(got), "%s: due at", what)
						return
					}
					require.True(t, lateBy.Sign() >= 0, "%s: due %s ns early", what, new(big.Rat).Neg(lateBy).FloatString(3))
					require.True(t, lateBy.Cmp(big.NewRat(2, 1)) < 0, "%s: due %s ns late", what, lateBy.FloatString(3))
				}
				for i := range 400 {
					switch rng.IntN(10) { // often not at all, or by less than a token, so that bookings pile up
					case 0, 1, 2, 3:
					case 4, 5, 6:
						clk.Advance(time.Duration(rng.Int64N(tokenNs)))
					default:
						clk.Advance(time.Duration(rng.Int64N(tokenNs * int64(cfg.capacity))))
					}
					now := clk.Now() - start
					n := 1 + rng.Int64N(cfg.capacity)
					switch op := rng.IntN(10); {
					case op < 3:
						got := l.TryTake(n)
						if now < last {
							behindBooking++
						}
						if cfg.exact || got {
							want := now >= last && tb.Margin(now, n).Sign() >= 0
							require.Equal(t, want, got, "op %d: TryTake(%d) at %d, last grant at %d", i, n, now, last)
						}
						if got {
							add(grant{now, n, -1})
						}
					case op < 6:
						d, err := l.Delay(n)
						require.NoError(t, err)
						checkDue(fmt.Sprintf("op %d: Delay(%d)", i, n), d, n)
					case op < 8 || len(rs) == 0:
						r, err := l.Reserve(n)
						require.NoError(t, err)
						d := r.Delay()
						checkDue(fmt.Sprintf("op %d: Reserve(%d)", i, n), d, n)
						if now+int64(d) > last && last > now {
							ahead++ // booked behind another booking
						}
						add(grant{now + int64(d), n, len(rs)})
						rs = append(rs, r)
					default:
						id := rng.IntN(len(rs))
						if rng.IntN(2) == 0 {
							id = len(rs) - 1 // the latest: the one a Cancel can give back
						}
						exact := len(gs) > 0 && gs[len(gs)-1].id == id && gs[len(gs)-1].at > now
						require.Equal(t, exact, rs[id].Cancel(), "op %d: Cancel of reservation %d", i, id)
						if exact {
							gs = gs[:len(gs)-1]
							tb, last = textbookRun(cfg.capacity, perNs, gs)
							exactCancels++
						} else {
							keptCancels++
						}
					}
					if cfg.exact {
						m := tb.Margin(max(now, last), 0)
						if now < last { // owed: the tokens earned by last count against the booking
							m.Sub(m, new(big.Rat).Mul(perNs, new(big.Rat).SetInt64(last-now)))
						}
						floor := new(big.Int).Div(m.Num(), m.Denom()) // Euclidean: floor for a positive denominator
						require.Equal(t, floor.Int64(), l.Tokens(), "op %d: Tokens at %d, last grant at %d", i, now, last)
					}
				}
				for what, count := range map[string]int{"exact cancels": exactCancels, "kept cancels": keptCancels,
					"bookings behind bookings": ahead, "requests behind a booking": behindBooking} {
					assert.Positive(t, count, "the run exercised no %s", what)
				}
			})
		}
	})
}

// TestDeadlineError: its message, and what it wraps.
func TestDeadlineError(t *testing.T) {
	err := error(&contend.DeadlineError{N: 3, Delay: 2 * time.Second, Left: time.Second})
	assert.Equal(t, "contend: 3 tokens are due in 2s, after the context's deadline in 1s", err.Error())
	assert.True(t, errors.Is(err, context.DeadlineExceeded))
}

// TestReserveBeyondRange: a booking due beyond the bucket's range
// (Limit.MaxElapsed since construction) is refused, booking nothing.
func TestReserveBeyondRange(t *testing.T) {
	forEach(t, func(t *testing.T, newL func(contend.BucketConfig) contend.Limiter) {
		clk := contend.NewManualClock(0)
		l := newL(contend.BucketConfig{Capacity: 1, Rate: contend.MinRate, Clock: clk}) // 2^62 ns a token
		require.True(t, l.TryTake(1))
		r, err := l.Reserve(1)
		require.NoError(t, err, "due at 2^62 ns, within the range")
		assert.Equal(t, time.Duration(1<<62), r.Delay())
		_, err = l.Reserve(1)
		assert.ErrorContains(t, err, "beyond the bucket's range")
		d, err := l.Delay(1)
		require.NoError(t, err)
		assert.Equal(t, time.Duration(1<<63-1), d, "2^63 ns: saturated")
		assert.True(t, r.Cancel(), "nothing was booked after r")
	})
}
