package pershard

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefreshDueRate: about one update in 64 refreshes, whatever the delta,
// including deltas that are large powers of two (which leave the low bits
// of the values unchanged) and negative ones. (Not for a counter whose
// values repeat with a short period, such as Add(1<<60), which wraps every
// 16 updates: no function of the value alone can then fire one time in 64.)
func TestRefreshDueRate(t *testing.T) {
	tests := []struct {
		name  string
		start uint64
		delta uint64
	}{
		{"ones", 0, 1},
		{"from a large value", 1 << 40, 1},
		{"by 64", 0, 64},
		{"by 2^32", 0, 1 << 32},
		{"by 2^40", 12345, 1 << 40},
		{"by 2^56", 5, 1 << 56},
		{"by 2^57", 0, 1 << 57},
		{"by 3 (odd, not a power of two)", 7, 3},
		{"by -1", 1 << 20, ^uint64(0)},
	}
	const updates = 1 << 16
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			due := 0
			for i := range uint64(updates) {
				if refreshDue(tt.start + i*tt.delta) {
					due++
				}
			}
			// 1/64 of 65536 is 1024; allow a factor of two either way.
			assert.GreaterOrEqual(t, due, updates/128, "refreshes too rare: a migrated goroutine keeps a stale hint")
			assert.LessOrEqual(t, due, updates/32, "refreshes too frequent: the hot path calls shardHint")
		})
	}
}

// TestHintEntryPerGoroutine: goroutines alive at the same time get their
// own entries (their stacks are disjoint), so that each caches its own hint.
func TestHintEntryPerGoroutine(t *testing.T) {
	const n = 100
	entries := make([]uintptr, n)
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-release // all n are alive, each on its own stack
			entries[i] = uintptr(unsafePointer(hintEntry()))
		}()
	}
	ready.Wait()
	close(release)
	done.Wait()
	distinct := map[uintptr]bool{}
	for _, e := range entries {
		distinct[e] = true
	}
	assert.GreaterOrEqual(t, len(distinct), n*9/10, "goroutines alive together should rarely share an entry")
}

// TestRefreshHint: refreshHint replaces a wrong entry with the current hint.
func TestRefreshHint(t *testing.T) {
	e := hintEntry()
	const wrong = 1 << 31 // no CPU number or P id: shardHint's values are below 2^24
	e.Store(wrong)
	refreshHint(e)
	got := e.Load()
	require.NotEqual(t, uint32(wrong), got, "a stale entry was not refreshed")
	assert.Less(t, got, uint32(1<<24))
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
