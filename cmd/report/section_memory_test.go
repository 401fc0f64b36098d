package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reportFrom writes lines (benchmark name and metrics, repeated as 6
// samples) as a raw file beside the fixture's catalog, runs the report and
// returns REPORT.md.
func reportFrom(t *testing.T, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("cores: 2\n")
	for _, l := range lines {
		for range 6 {
			b.WriteString(l + "\n")
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bench.txt"), []byte(b.String()), 0o644))
	withFixtureCatalog(t, dir)
	out := t.TempDir()
	var stderr bytes.Buffer
	require.NoError(t, run([]string{"-raw", dir, "-out", out}, &stderr), stderr.String())
	md, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	require.NoError(t, err)
	return string(md)
}

func churnLine(impl string, procs int, perGoroutine float64) string {
	return fmt.Sprintf("BenchmarkGoroutineChurn/impl=%s/goroutines=10000-%d \t 1 \t 500 ns/op \t %g B/goroutine", impl, procs, perGoroutine)
}

func memoryLine(family, impl string, procs int, bytes float64) string {
	return fmt.Sprintf("BenchmarkMemory/workload=%s/impl=%s/goroutines=1-%d \t 1 \t 50 ns/op \t %g B/instance", family, impl, procs, bytes)
}

func latencyLine(impl string, p50, p99, p999 float64) string {
	return fmt.Sprintf("BenchmarkBucketLatency/workload=near-limit/clock=real/impl=%s/goroutines=100-2 \t 1000 \t 50 ns/op \t 0.5 grant-ratio \t %g p50-ns \t %g p99-ns \t %g p999-ns", impl, p50, p99, p999)
}

// TestGoroutineLeakSentence: What goes wrong names the buckets that keep
// memory per goroutine (at least one smallest heap object each), with the
// total for the goroutines run, and bounds the others by their worst
// sample; with no such bucket it says that none keeps any.
func TestGoroutineLeakSentence(t *testing.T) {
	md := reportFrom(t, churnLine("per-goroutine", 2, 222.4), churnLine("atomic", 2, 0.3), churnLine("mutex", 2, -1.2), churnLine("xrate", 2, 7.9))
	assert.Contains(t, md, "`per-goroutine` still held 222 B for each goroutine that had called it and exited, 2.22 MB after 10,000 goroutines at GOMAXPROCS 2")
	assert.Contains(t, md, "Every other bucket held nothing per goroutine: at most 7.9 B either way in any sample")
	assert.NotContains(t, md, "`xrate` still held", "7.9 B is less than the smallest heap object")
	assert.Contains(t, md, "| per-goroutine (broken) | 222.4 |")
	assert.Contains(t, md, "| mutex | -1.2 |")

	md = reportFrom(t, churnLine("atomic", 2, -0.04))
	assert.Contains(t, md, "Every bucket held nothing per goroutine: at most 0.0 B")
	assert.Contains(t, md, "| atomic | 0.0 |", "no negative zero")
	assert.NotContains(t, md, "B for each goroutine that had called it")
}

// TestMemoryTable: bytes per instance to the byte, and the sentence that
// names what grows with GOMAXPROCS (by at least one smallest heap object)
// and what keeps memory per goroutine.
func TestMemoryTable(t *testing.T) {
	md := reportFrom(t,
		memoryLine("counter", "mutex", 1, 16.02), memoryLine("counter", "mutex", 2, 16.04),
		memoryLine("counter", "pershard", 1, 128), memoryLine("counter", "pershard", 2, 384.1),
		memoryLine("bucket", "atomic", 1, 80.2), memoryLine("bucket", "atomic", 2, 87.9),
		churnLine("per-goroutine", 2, 222.4))
	assert.Contains(t, md, "| GOMAXPROCS 1 | GOMAXPROCS 2 |")
	assert.Contains(t, md, "| counter | pershard | 128 | 384 |")
	assert.Contains(t, md, "| counter | mutex | 16 | 16 |")
	assert.Contains(t, md, "Depend on GOMAXPROCS at construction: counter `pershard` 128, 384 B at GOMAXPROCS 1, 2. The others do not.")
	assert.NotContains(t, md, "`atomic` 80", "7.7 B more is noise, not a size")
	assert.Contains(t, md, "`per-goroutine` keeps 222 B more for every goroutine that ever calls it")
}

// TestBucketLatencyText: the range of p99.9 leaves the timer floor out, and
// the buckets whose p99.9 is 100 times their p50 or more are named. (The
// percentiles follow the bucket section, so it needs a BenchmarkBucket
// result.)
func TestBucketLatencyText(t *testing.T) {
	md := reportFrom(t, "BenchmarkBucket/workload=near-limit/clock=real/impl=atomic/goroutines=100-2 \t 1000 \t 50 ns/op",
		latencyLine("atomic", 70, 80, 200), latencyLine("mutex", 80, 90, 8000), latencyLine("pershard", 70, 90, 6999), latencyLine(timerFloor, 30, 31, 40))
	assert.Contains(t, md, "At p99.9 the buckets range from 200 ns (`atomic`) to 8.00 µs (`mutex`); the timer alone reads 40.0 ns.")
	assert.Contains(t, md, "For `mutex` the p99.9 is 100 times the p50 or more:")
	assert.Contains(t, md, "| timer-floor | 30.0 ns | 31.0 ns | 40.0 ns | 0.500 |")
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -1234: "-1,234", -100: "-100"} {
		assert.Equal(t, want, thousands(n), "%d", n)
	}
	assert.Equal(t, "384 B", fmtBytes(384))
	assert.Equal(t, "2.22 MB", fmtBytes(2.224e6))
}
