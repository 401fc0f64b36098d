package main

import (
	"fmt"
	"math"
	"testing"

	"github.com/contend-lab/contend/catalog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
)

func labels(ticks []plot.Tick) []string {
	var out []string
	for _, t := range ticks {
		if t.Label != "" {
			out = append(out, t.Label)
		}
	}
	return out
}

// TestLogTicks: every decade is labelled, with 2 and 5 between when the
// axis spans up to three decades and every multiple when it is narrow;
// unlabelled minor ticks fill the rest.
func TestLogTicks(t *testing.T) {
	cases := []struct {
		min, max float64
		want     []string
		minor    int
	}{
		{0.0001, 10, []string{"0.0001", "0.001", "0.01", "0.1", "1", "10"}, 40},
		{5, 500, []string{"5", "10", "20", "50", "100", "200", "500"}, 12},
		{1, 5000, []string{"1", "10", "100", "1000"}, 28},
		{20, 200, []string{"20", "50", "100", "200"}, 6},
		{20, 90, []string{"20", "30", "40", "50", "60", "70", "80", "90"}, 0},
	}
	for _, tc := range cases {
		ticks := logTicks{}.Ticks(tc.min, tc.max)
		assert.Equal(t, tc.want, labels(ticks), "%g..%g", tc.min, tc.max)
		assert.Equal(t, tc.minor, len(ticks)-len(labels(ticks)), "%g..%g: minor ticks", tc.min, tc.max)
	}
}

// TestLinearTicks: a round step, 4 to 10 labels, none with float noise.
func TestLinearTicks(t *testing.T) {
	cases := []struct {
		min, max float64
		want     []string
	}{
		{0, 250, []string{"0", "50", "100", "150", "200", "250"}},
		{0, 92, []string{"0", "10", "20", "30", "40", "50", "60", "70", "80", "90"}},
		{0, 0.3, []string{"0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3"}},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, labels(linearTicks{}.Ticks(tc.min, tc.max)), "%g..%g", tc.min, tc.max)
	}
}

// TestRoundOut125 widens an axis to 1, 2 or 5 times a power of ten.
func TestRoundOut125(t *testing.T) {
	cases := []struct{ lo, hi, wantLo, wantHi float64 }{
		{0.00012, 4.1, 0.0001, 5}, {7, 180, 5, 200}, {1, 10, 1, 10}, {0.3, 0.9, 0.2, 1},
	}
	for _, tc := range cases {
		lo, hi := roundOut125(tc.lo, tc.hi)
		assert.InDelta(t, tc.wantLo, lo, 1e-12, "%g", tc.lo)
		assert.InDelta(t, tc.wantHi, hi, 1e-12, "%g", tc.hi)
	}
}

// TestGlyphsDistinct: no two of a chart's first len(glyphs) series share a
// glyph, and there are enough for the largest family (every bucket plus
// xrate-allow).
func TestGlyphsDistinct(t *testing.T) {
	require.GreaterOrEqual(t, len(glyphs), len(registryFamilyNames("bucket"))+1)
	for i := range glyphs {
		for j := range i {
			assert.NotEqual(t, glyphAt(j), glyphAt(i), "series %d and %d", j, i)
		}
	}
}

func registryFamilyNames(family string) []string {
	var out []string
	for _, i := range fixtureCatalog().Family(family, "") {
		out = append(out, i.Name)
	}
	return out
}

// fixtureCatalog is the catalog of the golden tests' fixture.
func fixtureCatalog() catalog.Catalog {
	c, err := readCatalog(fixture)
	if err != nil {
		panic(err)
	}
	return c
}

// TestMarkedFromRegistry: racy and broken implementations are marked and
// labelled with their guarantee; correct ones, and names the registry does
// not know, are not.
func TestMarkedFromRegistry(t *testing.T) {
	r := &report{reg: newRegistryIndex(fixtureCatalog())}
	cases := []struct {
		family, impl string
		marked       bool
		label        string
	}{
		{"counter", "naive", true, "naive (racy)"},
		{"counter", "pershard", false, "pershard"},
		{"bucket", "wallclock", true, "wallclock (broken)"},
		{"bucket", "xrate", false, "xrate"},
		{"redis lock", "redis-naive", true, "redis-naive (broken)"},
		{"redis lock", "redis", false, "redis"},
		{"bucket", "padded-slots", false, "padded-slots"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.marked, r.marked(tc.family, tc.impl), "%s/%s", tc.family, tc.impl)
		assert.Equal(t, tc.label, r.label(tc.family, tc.impl), "%s/%s", tc.family, tc.impl)
	}
}

// TestOversubscribed: the shading starts between the core count (from the
// run's configuration) and the next GOMAXPROCS, and is absent when no
// GOMAXPROCS exceeds the cores.
func TestOversubscribed(t *testing.T) {
	cases := []struct {
		cores, procs []int
		from         float64
	}{
		{[]int{2}, []int{1, 2, 4, 8}, math.Sqrt(8)},
		{[]int{4}, []int{1, 2, 4, 8}, math.Sqrt(32)},
		{[]int{16}, []int{1, 2, 4, 8, 16}, math.NaN()},
	}
	for _, tc := range cases {
		d := &Data{Cells: map[cellID]*Cell{}}
		for _, p := range tc.procs {
			d.Cells[cellID{Family: "Counter", Impl: "mutex", Goroutines: "1", Procs: p, Unit: "sec/op"}] = &Cell{}
		}
		r := &report{d: d, cores: tc.cores[0]}
		from, label := r.oversubscribed()
		if math.IsNaN(tc.from) {
			assert.True(t, math.IsNaN(from), "cores %d", tc.cores[0])
			assert.Empty(t, label)
			continue
		}
		assert.InDelta(t, tc.from, from, 1e-12, "cores %d", tc.cores[0])
		assert.Contains(t, label, fmt.Sprintf("> %d cores", tc.cores[0]))
	}
}
