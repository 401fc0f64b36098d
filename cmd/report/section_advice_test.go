package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cellSpec is one synthetic benchmark cell: six samples around ns.
type cellSpec struct {
	workload, impl, goroutines string
	procs                      int
	ns                         float64
}

// synthetic writes a raw file of counter cells on a 2-core machine and
// returns the report over it.
func synthetic(t *testing.T, cells []cellSpec) *report {
	t.Helper()
	var b strings.Builder
	b.WriteString("cores: 2\n")
	for _, c := range cells {
		suffix := ""
		if c.procs > 1 {
			suffix = fmt.Sprintf("-%d", c.procs)
		}
		for i := range 6 {
			// Six distinct samples spread ±2.5% around ns.
			v := c.ns * (0.975 + 0.01*float64(i))
			fmt.Fprintf(&b, "BenchmarkCounter/workload=%s/impl=%s/goroutines=%s%s \t 1000 \t %g ns/op\n", c.workload, c.impl, c.goroutines, suffix, v)
		}
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bench.txt"), []byte(b.String()), 0o644))
	withFixtureCatalog(t, dir)
	d, err := Load(dir)
	require.NoError(t, err)
	return newReport(d, dir, t.TempDir())
}

// at returns cells of one workload at 100 goroutines, GOMAXPROCS 2.
func at(workload string, procs int, nsByImpl ...any) []cellSpec {
	var out []cellSpec
	for i := 0; i < len(nsByImpl); i += 2 {
		out = append(out, cellSpec{workload, nsByImpl[i].(string), "100", procs, nsByImpl[i+1].(float64)})
	}
	return out
}

func TestAdviseRules(t *testing.T) {
	hot := useCase{name: "hot", group: groupID{Family: "Counter", Workload: "add-only"}, family: "counter", exact: false}
	read := useCase{name: "read", group: groupID{Family: "Counter", Workload: "read-mostly"}, family: "counter", exact: true}
	cases := []struct {
		name      string
		u         useCase
		cells     []cellSpec
		pick      []string
		tie       bool
		runnerUp  string
		notes     []string // each is in some note
		noNote    string   // in no note
		excluded  string
		guarantee string
	}{
		{
			name: "a difference within the noise is a tie", u: hot,
			cells: at("add-only", 2, "atomic", 10.0, "mutex", 10.05),
			pick:  []string{"atomic", "mutex"}, tie: true, runnerUp: "mutex", guarantee: "exact",
		},
		{
			name: "a clear difference is a pick", u: hot,
			cells: at("add-only", 2, "atomic", 10.0, "mutex", 20.0),
			pick:  []string{"atomic"}, runnerUp: "mutex", guarantee: "exact", noNote: "flips",
		},
		{
			name: "racy is never a candidate", u: hot,
			cells: at("add-only", 2, "naive", 1.0, "atomic", 10.0, "mutex", 20.0),
			pick:  []string{"atomic"}, runnerUp: "mutex", excluded: "`naive` (racy)", guarantee: "exact",
		},
		{
			name: "approximate where exactness is not the point, saying what it gives up", u: hot,
			cells: at("add-only", 2, "pershard", 5.0, "atomic", 10.0),
			pick:  []string{"pershard"}, runnerUp: "atomic", guarantee: "approximate", notes: []string{"gives up exactness"},
		},
		{
			name: "exact where exactness is the point, naming the faster approximate", u: read,
			cells: at("read-mostly", 2, "pershard", 5.0, "atomic", 10.0, "mutex", 20.0),
			pick:  []string{"atomic"}, runnerUp: "mutex", guarantee: "exact", notes: []string{"`pershard` is 2.00× faster (p=0.002) but approximate"},
		},
		{
			name: "a flip at another GOMAXPROCS within the cores", u: hot,
			cells: append(at("add-only", 2, "atomic", 10.0, "mutex", 20.0), at("add-only", 1, "atomic", 10.0, "mutex", 5.0)...),
			pick:  []string{"atomic"}, runnerUp: "mutex", guarantee: "exact", notes: []string{"flips at other goroutine counts or GOMAXPROCS: `mutex` at GOMAXPROCS 1 (up to 2.00× faster)"}, noNote: "cannot tell",
		},
		{
			name: "a flip only past the cores: this machine cannot tell", u: hot,
			cells: append(at("add-only", 2, "atomic", 10.0, "mutex", 20.0), at("add-only", 4, "atomic", 10.0, "mutex", 5.0)...),
			pick:  []string{"atomic"}, runnerUp: "mutex", guarantee: "exact", notes: []string{"this 2-core machine cannot tell: oversubscribed, `mutex` at GOMAXPROCS 4"}, noNote: "flips at",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := synthetic(t, tc.cells)
			a, ok := r.advise(tc.u)
			require.True(t, ok)
			assert.Equal(t, tc.pick, a.pick)
			assert.Equal(t, tc.tie, a.tie, "tie")
			assert.Equal(t, tc.runnerUp, a.runnerUp)
			assert.Equal(t, tc.guarantee, a.guarantee)
			all := strings.Join(a.notes, " | ")
			for _, n := range tc.notes {
				assert.Contains(t, all, n)
			}
			if tc.noNote != "" {
				assert.NotContains(t, all, tc.noNote)
			}
			if tc.excluded != "" {
				assert.Contains(t, a.excluded, tc.excluded)
			}
		})
	}
}

// TestWhatToUsePrintsTies: a tie reads as one in the report's table.
func TestWhatToUsePrintsTies(t *testing.T) {
	r := synthetic(t, at("add-only", 2, "atomic", 10.0, "mutex", 10.05))
	require.NoError(t, r.whatToUse())
	assert.Contains(t, r.b.String(), "| hot counter (many writers, rare reads) | `atomic` or `mutex` (tie) | exact | (tied in use) | tie: ")
	assert.Contains(t, r.b.String(), "**Scaling past 2 cores is unmeasured**")
}
