package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/contend-lab/contend/catalog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchmath"
	"gonum.org/v1/plot/vg"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const fixture = "testdata/fixture"

// generate runs the report on the fixture into a temporary directory.
func generate(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	var stderr bytes.Buffer
	require.NoError(t, run([]string{"-raw", fixture, "-out", out}, &stderr), stderr.String())
	return out
}

// TestGolden compares REPORT.md and summary.csv with the committed golden
// files. Run go test ./cmd/report -update to accept a change, and read the
// diff before committing it.
func TestGolden(t *testing.T) {
	out := generate(t)
	for _, name := range []string{"REPORT.md", "summary.csv", "details.md", "readme-numbers.md"} {
		got, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		golden := filepath.Join("testdata", "golden", name)
		if *update {
			require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
			require.NoError(t, os.WriteFile(golden, got, 0o644))
			continue
		}
		want, err := os.ReadFile(golden)
		require.NoError(t, err, "run go test ./cmd/report -update to create it")
		assert.Equal(t, string(want), string(got), "%s differs from %s", name, golden)
	}
}

// TestChartsExistAndDecode: every chart REPORT.md links exists as SVG and
// as a PNG that decodes to the size the report draws.
func TestChartsExistAndDecode(t *testing.T) {
	out := generate(t)
	md, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	require.NoError(t, err)
	links := regexp.MustCompile(`\]\(charts/([a-z0-9-]+)\.svg\)`).FindAllStringSubmatch(string(md), -1)
	require.NotEmpty(t, links)
	for _, l := range links {
		svg, err := os.ReadFile(filepath.Join(out, "charts", l[1]+".svg"))
		require.NoError(t, err)
		assert.Contains(t, string(svg), "<svg", l[1])
		f, err := os.Open(filepath.Join(out, "charts", l[1]+".png"))
		require.NoError(t, err)
		img, err := png.Decode(f)
		f.Close()
		require.NoError(t, err, l[1])
		wantWidth := float64(chartWidth/vg.Inch) * pngDPI
		assert.InDelta(t, wantWidth, float64(img.Bounds().Dx()), 1, "%s: PNG width", l[1])
	}
}

// rawLine matches a benchmark result line: name, iterations, value/unit pairs.
var rawLine = regexp.MustCompile(`^Benchmark(\S+)\s+\d+\s+(.*)$`)

// independentSamples groups the fixture's values by (full name, unit) with
// a regexp, independently of benchproc, and converts ns/op to sec/op as
// benchfmt does.
func independentSamples(t *testing.T, path string) map[[2]string][]float64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	samples := map[[2]string][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := rawLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			require.NoError(t, err)
			unit := fields[i+1]
			if unit == "ns/op" {
				v, unit = v*1e-9, "sec/op"
			} else if strings.HasSuffix(unit, "-ns") {
				v, unit = v*1e-9, strings.TrimSuffix(unit, "ns")+"sec" // p50-ns -> p50-sec
			}
			k := [2]string{m[1], unit}
			samples[k] = append(samples[k], v)
		}
	}
	require.NoError(t, sc.Err())
	return samples
}

// TestCellsEqualBenchmath: Load's cells hold exactly the fixture's values
// for each name and unit, and their summaries are benchmath's.
func TestCellsEqualBenchmath(t *testing.T) {
	d, err := Load(fixture)
	require.NoError(t, err)
	want := independentSamples(t, filepath.Join(fixture, "bench.txt"))
	require.Len(t, d.Cells, len(want), "one cell per benchmark name and unit")
	for _, c := range d.Cells {
		vals, ok := want[[2]string{c.Name, c.ID.Unit}]
		if !assert.True(t, ok, "cell %s %s not in the fixture", c.Name, c.ID.Unit) {
			continue
		}
		sorted := append([]float64(nil), vals...)
		sort.Float64s(sorted) // benchmath.NewSample sorts the values it is given
		assert.InDeltaSlice(t, sorted, c.Values, 1e-15, c.Name)
		s := benchmath.AssumeNothing.Summary(benchmath.NewSample(vals, &benchmath.DefaultThresholds), 0.95)
		assert.Equal(t, s.Center, c.Summary.Center, c.Name)
		assert.Equal(t, len(vals) >= 6, c.HasCI, "%s: n=%d", c.Name, len(vals))
		if c.HasCI {
			assert.Equal(t, s.Lo, c.Summary.Lo, c.Name)
			assert.Equal(t, s.Hi, c.Summary.Hi, c.Name)
		}
	}
}

// TestSummaryByHand pins the statistics to numbers worked out by hand: the
// median of 10..15 ns is 12.5 ns, and for n = 6 the distribution-free 95%
// CI of the median is [min, max] (confidence 1 - 2/2^6 = 96.9%).
func TestSummaryByHand(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for _, v := range []int{13, 10, 15, 11, 14, 12} {
		b.WriteString("BenchmarkCounter/workload=add-only/impl=mutex/goroutines=1 \t 100 \t " + strconv.Itoa(v) + " ns/op\n")
	}
	for _, v := range []int{3, 1, 2} {
		b.WriteString("BenchmarkCounter/workload=add-only/impl=atomic/goroutines=1 \t 100 \t " + strconv.Itoa(v) + " ns/op\n")
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.txt"), []byte(b.String()), 0o644))
	withFixtureCatalog(t, dir)
	d, err := Load(dir)
	require.NoError(t, err)
	mutex := d.Cell(cellID{Family: "Counter", Workload: "add-only", Impl: "mutex", Goroutines: "1", Procs: 1, Unit: "sec/op"})
	require.NotNil(t, mutex)
	assert.InDelta(t, 12.5e-9, mutex.Summary.Center, 1e-21)
	assert.True(t, mutex.HasCI)
	assert.InDelta(t, 10e-9, mutex.Summary.Lo, 1e-21)
	assert.InDelta(t, 15e-9, mutex.Summary.Hi, 1e-21)
	atomic := d.Cell(cellID{Family: "Counter", Workload: "add-only", Impl: "atomic", Goroutines: "1", Procs: 1, Unit: "sec/op"})
	require.NotNil(t, atomic)
	assert.InDelta(t, 2e-9, atomic.Summary.Center, 1e-21)
	assert.False(t, atomic.HasCI, "3 samples: no 95% CI")
	assert.Equal(t, "n/a (n=3 < 6)", ciString(atomic))
}

// TestFewSamplesSayCIUnavailable: the fixture's keyed cells have 3 samples;
// the report says so instead of printing an interval.
func TestFewSamplesSayCIUnavailable(t *testing.T) {
	out := generate(t)
	md, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "n/a (n=3 < 6)")
	assert.Contains(t, string(md), "n/a (fewer than 6 samples)")
}

// TestSummaryCSVMatchesBenchstat runs benchstat itself on the fixture and
// checks that summary.csv's medians agree with it to 3 significant digits
// (benchstat prints its CSV at full precision, so they agree exactly).
func TestSummaryCSVMatchesBenchstat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds benchstat")
	}
	cmd := exec.Command("go", "run", "golang.org/x/perf/cmd/benchstat", "-format", "csv", filepath.Join(fixture, "bench.txt"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	benchstat := parseBenchstatCSV(t, raw)
	require.NotEmpty(t, benchstat)

	out := generate(t)
	f, err := os.Open(filepath.Join(out, "summary.csv"))
	require.NoError(t, err)
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Equal(t, csvHeader, rows[0])
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	matched := 0
	for _, row := range rows[1:] {
		key := [2]string{row[col["benchmark"]], row[col["unit"]]}
		want, ok := benchstat[key]
		if !assert.True(t, ok, "benchstat has no %v", key) {
			continue
		}
		got, err := strconv.ParseFloat(row[col["median"]], 64)
		require.NoError(t, err)
		assert.Equal(t, strconv.FormatFloat(want, 'g', 3, 64), strconv.FormatFloat(got, 'g', 3, 64), "%v", key)
		matched++
	}
	assert.Equal(t, len(benchstat), matched, "every benchstat row is in summary.csv")
}

// parseBenchstatCSV reads benchstat -format csv output: per table, a header
// row ",<file>," then ",<unit>,CI", then rows "name,median,CI".
func parseBenchstatCSV(t *testing.T, raw []byte) map[[2]string]float64 {
	t.Helper()
	out := map[[2]string]float64{}
	unit := ""
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	require.NoError(t, err)
	for _, rec := range recs {
		if len(rec) < 2 {
			continue
		}
		if rec[0] == "" {
			if len(rec) >= 3 && rec[2] == "CI" {
				unit = rec[1]
			}
			continue
		}
		if rec[0] == "geomean" || unit == "" {
			continue
		}
		v, err := strconv.ParseFloat(rec[1], 64)
		if err != nil {
			continue
		}
		out[[2]string{rec[0], unit}] = v
	}
	return out
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	good := "BenchmarkCounter/workload=add-only/impl=mutex/goroutines=1 \t 100 \t 10 ns/op\n"
	cases := []struct {
		name string
		raw  string
		want string // in the error
	}{
		{"missing directory", filepath.Join(dir, "nope"), "nope: no such file or directory"},
		{"directory without raw files", filepath.Dir(write("empty-dir/notes.md", "x")), "no *.txt file in"},
		{"empty file", write("empty/bench.txt", ""), "empty/bench.txt: no benchmark results"},
		{"not benchmark output", write("prose/bench.txt", "hello\nworld\n"), "prose/bench.txt: no benchmark results"},
		{"corrupt value", write("corrupt/bench.txt", good+good+"BenchmarkCounter/workload=add-only/impl=mutex/goroutines=1 \t 100 \t ten ns/op\n"), "corrupt/bench.txt:3:"},
		{"truncated line", write("truncated/bench.txt", good+"BenchmarkCounter/workload=add-only/impl=mutex/goroutines=1 \t 100 \t 10\n"), "truncated/bench.txt:2:"},
		{"bad goroutines", write("badg/bench.txt", "BenchmarkCounter/workload=add-only/impl=mutex/goroutines=many \t 100 \t 10 ns/op\n"), `goroutines="many"`},
		{"no catalog", write("nocatalog/bench.txt", good), "nocatalog/catalog.json is missing: make bench writes it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			var stderr bytes.Buffer
			err := run([]string{"-raw", tc.raw, "-out", out}, &stderr)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			_, statErr := os.Stat(filepath.Join(out, "REPORT.md"))
			assert.True(t, os.IsNotExist(statErr), "nothing is written on bad input")
		})
	}
}

func TestSig3(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1.00"}, {12.345, "12.3"}, {123.45, "123"}, {1234.6, "1235"}, {1234.5, "1234"}, {0.012345, "0.0123"}, {2e9, "2e+09"}, {math.NaN(), "NaN"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, sig3(tc.v), "%v", tc.v)
	}
	assert.Equal(t, "12.3 ns", fmtTime(12.34e-9))
	assert.Equal(t, "1.50 µs", fmtTime(1.5e-6))
}

// TestColoursStable: the lab's own implementations never share a colour,
// and a name's colour does not depend on the chart.
func TestColoursStable(t *testing.T) {
	_, err := Load(fixture) // sets the order from the fixture's catalog
	require.NoError(t, err)
	for _, names := range [][]string{localColoured, keyedNames, remoteOrderList} { // never on one chart together
		require.NotEmpty(t, names)
		seen := map[string]string{}
		for _, name := range names {
			key := strconvColor(implColor(name))
			assert.Empty(t, seen[key], "%s and %s share a colour", name, seen[key])
			seen[key] = name
		}
	}
	assert.Equal(t, implColor("some-new-impl"), implColor("some-new-impl"))
	names := []string{"zeta", "mutex", "naive", "alpha"}
	sortImpls(names)
	assert.Equal(t, []string{"naive", "mutex", "alpha", "zeta"}, names)
}

func strconvColor(c interface{ RGBA() (r, g, b, a uint32) }) string {
	r, g, b, _ := c.RGBA()
	return strconv.Itoa(int(r>>8)) + "," + strconv.Itoa(int(g>>8)) + "," + strconv.Itoa(int(b>>8))
}

// TestReportShape: the report states that scaling past the cores is
// unmeasured, keeps every GOMAXPROCS table on details.md (linked), and
// defines every implementation it shows in its Names section.
func TestReportShape(t *testing.T) {
	out := generate(t)
	md, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	require.NoError(t, err)
	report := string(md)
	assert.Contains(t, report, "**Scaling past 2 cores is unmeasured.**")
	assert.Contains(t, report, "](details.md)")
	assert.NotContains(t, report, "GOMAXPROCS 1</summary>", "per-GOMAXPROCS tables belong on details.md")
	details, err := os.ReadFile(filepath.Join(out, "details.md"))
	require.NoError(t, err)
	assert.Contains(t, string(details), "### counter, add-only, GOMAXPROCS 1")

	names := report[strings.Index(report, "## Names"):]
	names = names[:strings.Index(names, "\n## ")+1]
	d, err := Load(fixture)
	require.NoError(t, err)
	for id := range d.Cells {
		switch id.Family {
		case "Floor", "Correctness", "LockLatency", "BucketLatency", "Memory", "GoroutineChurn":
			continue // floors and timer-floor define themselves where they are shown; the others are families named above
		}
		assert.Contains(t, names, "`"+id.Impl+"` (", "%s/%s is not defined in Names", id.Family, id.Impl)
	}
}

// withFixtureCatalog copies the fixture's catalog into dir, beside a raw
// file a test wrote.
func withFixtureCatalog(t *testing.T, dir string) {
	t.Helper()
	cat, err := os.ReadFile(filepath.Join(fixture, catalog.File))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, catalog.File), cat, 0o644))
}

// TestRemoteTierAtItsOwnProcs: the remote tier may run at a GOMAXPROCS the
// in-process benchmarks did not end on; its tables and charts read the
// cells where they are instead of drawing an empty log-scale chart (which
// panicked inside gonum/plot).
func TestRemoteTierAtItsOwnProcs(t *testing.T) {
	dir := t.TempDir()
	var raw strings.Builder
	raw.WriteString("cores: 2\n")
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&raw, "BenchmarkCounter/workload=add-only/impl=mutex/goroutines=1-2 \t 100 \t %d ns/op\n", 10+i)
		for _, g := range []int{1, 100} {
			fmt.Fprintf(&raw, "BenchmarkRemoteLock/backend=redis/workload=single/impl=redis/goroutines=%d-8 \t 100 \t %d ns/op \t %d p50-ns \t %d p99-ns \t %d p999-ns\n", g, 200000+i, 190000+i, 400000+i, 600000+i)
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bench.txt"), []byte(raw.String()), 0o644))
	withFixtureCatalog(t, dir)
	out := t.TempDir()
	var stderr bytes.Buffer
	require.NoError(t, run([]string{"-raw", dir, "-out", out}, &stderr), stderr.String())
	report, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	require.NoError(t, err)
	assert.Contains(t, string(report), "contending goroutines (GOMAXPROCS 8)")
	assert.Contains(t, string(report), "| `redis` | 100 | 200 µs |")
}
