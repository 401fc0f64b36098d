package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/contend-lab/contend/catalog"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchproc"
)

// Confidence is the confidence level of every interval in the report, as in
// benchstat's default.
const Confidence = 0.95

// cellID identifies one benchmark cell: everything in a result's name and
// configuration that the report groups by, plus the unit. Results with the
// same cellID are samples of one distribution.
type cellID struct {
	Family   string // Counter, Bucket, Keyed, Floor, Correctness, RemoteLock, ... (the name after "Benchmark")
	Backend  string // backend= (RemoteLock, RemoteBucket): the remote backend
	Workload string // workload= (Counter, Bucket, Keyed, Floor; a remote deployment)
	Clock    string // clock= (Bucket)
	Check    string // check= (Correctness)
	Impl     string // impl=
	// Goroutines is the goroutines= value: a number, or "gomaxprocs".
	Goroutines string
	Procs      int // GOMAXPROCS, from the name's -N suffix (none means 1)
	Unit       string
}

// groupID is a cellID without the implementation: the cells compared with
// each other in one table row set.
type groupID struct {
	Family, Backend, Workload, Clock, Check string
}

func (c cellID) group() groupID { return groupID{c.Family, c.Backend, c.Workload, c.Clock, c.Check} }

// Threads is the number of goroutines the cell ran: Goroutines resolved
// against Procs.
func (c cellID) Threads() int {
	if c.Goroutines == "gomaxprocs" {
		return c.Procs
	}
	n, _ := strconv.Atoi(c.Goroutines)
	return n
}

// Cell is one benchmark cell with its statistics, computed by benchmath the
// way benchstat computes them.
type Cell struct {
	ID cellID
	// Name is the benchmark's full name as go test printed it (with the
	// -GOMAXPROCS suffix), as benchstat shows it without "Benchmark".
	Name    string
	Values  []float64
	Sample  *benchmath.Sample
	Summary benchmath.Summary // median and its CI (benchmath.AssumeNothing unless the unit says otherwise)
	// HasCI reports whether the CI is finite: benchmath needs at least 6
	// samples for a 95% interval of the median.
	HasCI bool
}

// Data is every cell of a set of raw files, and their configuration.
type Data struct {
	Files  []string
	Config []benchfmt.Config // the configuration of the first result, in file order
	Cells  map[cellID]*Cell
	Units  benchfmt.UnitMetadataMap
	// BenchTimes lists the distinct benchtime configuration values, in order,
	// and BenchTimeOf each benchmark family's (the first it ran with).
	BenchTimes  []string
	BenchTimeOf map[string]string
	assume      map[string]benchmath.Assumption
	// Catalog is the registry as data, written by the run beside its raw
	// files (catalog.File).
	Catalog catalog.Catalog
	// firstConfig is each configuration key's first value in the files, so
	// that a key set midway (server-<backend>) is found too.
	firstConfig map[string]string
}

// errNoResults is returned for a raw file without any benchmark result.
var errNoResults = errors.New("no benchmark results")

// Load reads every *.txt file in dir (or dir itself, if it is a file) as
// benchfmt, and computes each cell's summary. A missing or empty file, a
// file with no benchmark result, and any benchfmt syntax error are errors
// naming the file (and the line).
func Load(dir string) (*Data, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("raw results: %w", err)
	}
	paths := []string{dir}
	if fi.IsDir() {
		paths, err = filepath.Glob(filepath.Join(dir, "*.txt"))
		if err != nil {
			return nil, err
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("raw results: no *.txt file in %s", dir)
		}
		sort.Strings(paths)
	}

	var pp benchproc.ProjectionParser
	proj, err := pp.Parse(".name,/workload,/clock,/check,/impl,/goroutines,/gomaxprocs,/backend", nil)
	if err != nil {
		return nil, fmt.Errorf("projection: %w", err) // a bug, not bad input
	}
	fields := proj.Fields()

	d := &Data{Files: paths, Cells: map[cellID]*Cell{}, Units: benchfmt.UnitMetadataMap{}, firstConfig: map[string]string{}, BenchTimeOf: map[string]string{}}
	for _, path := range paths {
		if err := d.readFile(path, proj, fields); err != nil {
			return nil, err
		}
	}
	d.summarise()
	if d.Catalog, err = readCatalog(dir); err != nil {
		return nil, err
	}
	setImplOrder(d.Catalog)
	return d, nil
}

func (d *Data) readFile(path string, proj *benchproc.Projection, fields []*benchproc.Field) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("raw results: %w", err)
	}
	defer f.Close()
	r := benchfmt.NewReader(f, path)
	results := 0
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			return fmt.Errorf("raw results: %w", rec) // "file:line: message"
		case *benchfmt.Result:
			if err := d.add(path, rec, proj, fields); err != nil {
				return err
			}
			results++
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("raw results: %s: %w", path, err)
	}
	if results == 0 {
		return fmt.Errorf("raw results: %s: %w (is it the output of go test -bench?)", path, errNoResults)
	}
	for k, v := range r.Units() {
		d.Units[k] = v
	}
	return nil
}

func (d *Data) add(path string, res *benchfmt.Result, proj *benchproc.Projection, fields []*benchproc.Field) error {
	if d.Config == nil {
		d.Config = append([]benchfmt.Config(nil), res.Config...)
	}
	for _, c := range res.Config {
		if _, seen := d.firstConfig[c.Key]; !seen {
			d.firstConfig[c.Key] = string(c.Value)
		}
	}
	if bt := res.GetConfig("benchtime"); bt != "" {
		if !contains(d.BenchTimes, bt) {
			d.BenchTimes = append(d.BenchTimes, bt)
		}
		fam := string(res.Name.Base())
		if _, ok := d.BenchTimeOf[fam]; !ok {
			d.BenchTimeOf[fam] = bt
		}
	}
	key := proj.Project(res)
	get := func(i int) string { return key.Get(fields[i]) }
	id := cellID{
		Family: get(0), Workload: get(1), Clock: get(2), Check: get(3), Impl: get(4), Goroutines: get(5), Backend: get(7),
	}
	procs := get(6)
	if procs == "" {
		id.Procs = 1
	} else {
		n, err := strconv.Atoi(procs)
		if err != nil || n < 1 {
			return fmt.Errorf("raw results: %s: %s: GOMAXPROCS suffix %q is not a positive number", path, res.Name.Full(), procs)
		}
		id.Procs = n
	}
	if id.Impl == "" || id.Goroutines == "" {
		// Not one of the suite's benchmarks: ignore it, as benchstat would
		// show it, but the report has no place for it.
		return nil
	}
	if id.Goroutines != "gomaxprocs" {
		if n, err := strconv.Atoi(id.Goroutines); err != nil || n < 1 {
			return fmt.Errorf("raw results: %s: %s: goroutines=%q is neither a positive number nor gomaxprocs", path, res.Name.Full(), id.Goroutines)
		}
	}
	for _, v := range res.Values {
		id := id
		id.Unit = v.Unit
		c := d.Cells[id]
		if c == nil {
			c = &Cell{ID: id, Name: strings.TrimPrefix(res.Name.String(), "Benchmark")}
			d.Cells[id] = c
		}
		c.Values = append(c.Values, v.Value)
	}
	return nil
}

func (d *Data) summarise() {
	d.assume = map[string]benchmath.Assumption{}
	for _, c := range d.Cells {
		a := d.assumption(c.ID.Unit)
		c.Sample = benchmath.NewSample(c.Values, &benchmath.DefaultThresholds)
		c.Summary = a.Summary(c.Sample, Confidence)
		c.HasCI = !math.IsInf(c.Summary.Lo, 0) && !math.IsInf(c.Summary.Hi, 0) && !math.IsNaN(c.Summary.Lo) && !math.IsNaN(c.Summary.Hi)
	}
}

func (d *Data) assumption(unit string) benchmath.Assumption {
	a, ok := d.assume[unit]
	if !ok {
		a = d.Units.GetAssumption(unit)
		d.assume[unit] = a
	}
	return a
}

// Compare compares cell c with base, as benchstat compares a column with
// its baseline: a Mann-Whitney U test under AssumeNothing.
func (d *Data) Compare(base, c *Cell) benchmath.Comparison {
	return d.assumption(c.ID.Unit).Compare(base.Sample, c.Sample)
}

// ConfigValue returns key's first configuration value in the files, or "".
func (d *Data) ConfigValue(key string) string { return d.firstConfig[key] }

// Cell returns the cell for id, or nil.
func (d *Data) Cell(id cellID) *Cell { return d.Cells[id] }

// Groups returns the distinct groups of a family, sorted.
func (d *Data) Groups(family string) []groupID {
	seen := map[groupID]bool{}
	var gs []groupID
	for id := range d.Cells {
		if g := id.group(); id.Family == family && !seen[g] {
			seen[g] = true
			gs = append(gs, g)
		}
	}
	sort.Slice(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.Backend != b.Backend {
			return a.Backend < b.Backend
		}
		if a.Workload != b.Workload {
			if ra, rb := workloadRank(a.Workload), workloadRank(b.Workload); ra != rb {
				return ra < rb
			}
			return a.Workload < b.Workload
		}
		if a.Clock != b.Clock {
			return a.Clock > b.Clock // real before frozen
		}
		return checkRank(a.Check) < checkRank(b.Check)
	})
	return gs
}

// Impls returns the implementations measured in group g, in the report's
// order (the registry's, then the rest alphabetically).
func (d *Data) Impls(g groupID) []string {
	seen := map[string]bool{}
	var impls []string
	for id := range d.Cells {
		if id.group() == g && !seen[id.Impl] {
			seen[id.Impl] = true
			impls = append(impls, id.Impl)
		}
	}
	sortImpls(impls)
	return impls
}

// Procs returns the distinct GOMAXPROCS values measured, ascending: of
// every cell, or only of the cells of the given families.
func (d *Data) Procs(families ...string) []int {
	seen := map[int]bool{}
	var ps []int
	for id := range d.Cells {
		if len(families) > 0 && !slices.Contains(families, id.Family) {
			continue
		}
		if !seen[id.Procs] {
			seen[id.Procs] = true
			ps = append(ps, id.Procs)
		}
	}
	sort.Ints(ps)
	return ps
}

// GoroutineCounts returns the goroutines= values of group g, ordered 1,
// gomaxprocs, then numerically.
func (d *Data) GoroutineCounts(g groupID) []string {
	seen := map[string]bool{}
	var gs []string
	for id := range d.Cells {
		if id.group() == g && !seen[id.Goroutines] {
			seen[id.Goroutines] = true
			gs = append(gs, id.Goroutines)
		}
	}
	sort.Slice(gs, func(i, j int) bool { return goroutinesRank(gs[i]) < goroutinesRank(gs[j]) })
	return gs
}

func goroutinesRank(g string) float64 {
	if g == "gomaxprocs" {
		return 1.5
	}
	n, _ := strconv.Atoi(g)
	return float64(n)
}

var workloadOrder = []string{"add-only", "read-mostly", "always-grant", "mostly-deny", "near-limit", "unblocked", "paced", "zipf", "zipf-string", "empty", "work", "local-increment", "atomic-add", "clock-read"}

func workloadRank(w string) int { return rank(workloadOrder, w) }

var checkOrder = []string{"lost-updates", "grant-ratio", "wall-clock-step", "large-clock", "lock-overlaps", "semaphore-overflow"}

func checkRank(c string) int { return rank(checkOrder, c) }

func rank(order []string, s string) int {
	for i, o := range order {
		if o == s {
			return i
		}
	}
	return len(order)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// title turns a workload or check name into words: "add-only" -> "add-only".
func describeGroup(g groupID) string {
	parts := []string{strings.ToLower(g.Family)}
	if g.Backend != "" {
		parts = append(parts, g.Backend)
	}
	if g.Workload != "" {
		parts = append(parts, g.Workload)
	}
	if g.Clock != "" {
		parts = append(parts, g.Clock+" clock")
	}
	if g.Check != "" {
		parts = append(parts, g.Check)
	}
	return strings.Join(parts, ", ")
}
