package mutex

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend"
)

func TestGoroutineID(t *testing.T) {
	for name, id := range map[string]func() uintptr{"goroutineID": goroutineID, "stackGoroutineID": stackGoroutineID} {
		t.Run(name, func(t *testing.T) {
			me := id()
			require.NotZero(t, me)
			assert.Equal(t, me, id(), "stable within a goroutine")
			const n = 16
			ids := make(chan uintptr, n)
			var live sync.WaitGroup // every goroutine stays alive until all have reported, so no id is reused
			live.Add(n)
			release := make(chan struct{})
			for range n {
				go func() {
					ids <- id()
					live.Done()
					<-release
				}()
			}
			live.Wait()
			close(release)
			seen := map[uintptr]bool{me: true}
			for range n {
				got := <-ids
				assert.NotZero(t, got)
				assert.False(t, seen[got], "id %#x seen twice among live goroutines", got)
				seen[got] = true
			}
		})
	}
}

func TestReentrantMutexDepth(t *testing.T) {
	for _, depth := range []int{1, 2, 3, 10} {
		var m ReentrantMutex
		for range depth {
			m.Lock()
		}
		assert.True(t, m.Held())
		assert.Equal(t, uint64(depth), m.depth)
		assert.False(t, otherGoroutine(m.TryLock), "depth %d: another goroutine cannot take it", depth)
		for i := range depth {
			require.NoError(t, m.TryUnlock(), "unlock %d of %d", i+1, depth)
			if i < depth-1 {
				assert.False(t, otherGoroutine(m.TryLock), "depth %d after %d unlocks: still held", depth, i+1)
			}
		}
		assert.False(t, m.Held())
		assert.ErrorIs(t, m.TryUnlock(), ErrNotLocked, "one unlock too many")
		assert.True(t, otherGoroutine(func() bool {
			ok := m.TryLock()
			m.Unlock()
			return ok
		}), "depth %d: released after as many unlocks", depth)
	}
}

// otherGoroutine runs f on a new goroutine and returns its result.
func otherGoroutine(f func() bool) bool {
	r := make(chan bool)
	go func() { r <- f() }()
	return <-r
}

func TestReentrantMutexMisuse(t *testing.T) {
	var m ReentrantMutex
	assert.ErrorIs(t, m.TryUnlock(), ErrNotLocked)
	assert.PanicsWithValue(t, ErrNotLocked, m.Unlock)

	m.Lock()
	otherGoroutine(func() bool {
		assert.ErrorIs(t, m.TryUnlock(), ErrNotOwner)
		assert.PanicsWithValue(t, ErrNotOwner, m.Unlock)
		assert.False(t, m.Held())
		return true
	})
	assert.True(t, m.Held(), "a failed unlock by another goroutine changes nothing")
	assert.Equal(t, uint64(1), m.depth)
	m.Unlock()
}

func TestReentrantMutexBlocksOthersUntilReleased(t *testing.T) {
	var m ReentrantMutex
	m.Lock()
	m.Lock()
	acquired := make(chan struct{})
	go func() {
		m.Lock()
		close(acquired)
		m.Unlock()
	}()
	m.Unlock()
	select {
	case <-acquired:
		t.Fatal("another goroutine acquired the mutex while the holder was one level deep")
	case <-time.After(20 * time.Millisecond):
	}
	m.Unlock()
	select {
	case <-acquired:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never acquired the released mutex")
	}
}

// TestReentrantMutexExcludes: many goroutines, each nesting its
// acquisitions, increment a plain int. Under -race any failure of mutual
// exclusion is also a reported race.
func TestReentrantMutexExcludes(t *testing.T) {
	const goroutines, rounds = 8, 500
	var m ReentrantMutex
	var n int
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				m.Lock()
				m.Lock()
				n++
				m.Unlock()
				if m.TryLock() {
					n++
					m.Unlock()
				}
				m.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 2*goroutines*rounds, n)
}

func TestReentrantCounterAddAndLoad(t *testing.T) {
	c := NewReentrantCounter()
	assert.Equal(t, int64(5), c.AddAndLoad(5), "would deadlock on a sync.Mutex")
	assert.Equal(t, int64(3), c.AddAndLoad(-2))
	assert.Equal(t, int64(3), c.Load())
}

func TestReentrantBucketTryTakeAll(t *testing.T) {
	cases := []struct {
		name      string
		ns        []int64
		want      bool
		remaining int64 // tokens left afterwards, of Capacity 10
	}{
		{"all fit", []int64{3, 3, 4}, true, 0},
		{"last does not fit: none taken", []int64{3, 3, 5}, false, 10},
		{"an impossible request: none taken", []int64{1, 11}, false, 10},
		{"empty", nil, true, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewReentrantBucket(contend.BucketConfig{Capacity: 10, Rate: 1, Clock: contend.NewManualClock(0)})
			require.NoError(t, err)
			assert.Equal(t, tc.want, b.TryTakeAll(tc.ns...))
			var left int64
			for left < 20 && b.TryTake(1) {
				left++
			}
			assert.Equal(t, tc.remaining, left)
		})
	}
}

func BenchmarkGoroutineID(b *testing.B) {
	b.Run("impl=getg", func(b *testing.B) {
		for b.Loop() {
			goroutineID()
		}
	})
	b.Run("impl=runtime.Stack", func(b *testing.B) {
		for b.Loop() {
			stackGoroutineID()
		}
	})
}
