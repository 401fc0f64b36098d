// Command benchcheck checks the lab's performance targets (issue 4) against
// raw benchmark output, and exits non-zero when one is missed.
//
//	go run ./cmd/benchcheck results/bench-check/raw.txt
//
// Every target is a ratio of medians measured in the same run, at
// GOMAXPROCS 2 with 100 goroutines unless it says otherwise, because this
// machine is noisy and only ratios within one run mean anything. Medians,
// and the Mann-Whitney U test used where a target says "faster", come from
// golang.org/x/perf/benchmath, as benchstat computes them. make bench-check
// runs the benchmarks these targets need (scripts/bench-check.sh).
package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// A target compares two benchmarks: the ratio of Num's median to Den's
// median (both sec/op unless Unit says otherwise) must be at most Max.
type target struct {
	What     string
	Num, Den string // benchmark names without "Benchmark", with the -GOMAXPROCS suffix
	Max      float64
	// Faster: Num must also be faster than Den with p < alpha.
	Faster bool
	// OrSame: a ratio above Max passes if the difference is not
	// significant (p >= alpha): "costs no more than".
	OrSame bool
	// WhyMissed is printed under a missed target: what this lab knows
	// about why, measured. It never turns a miss into a pass.
	WhyMissed string
}

// targets are issue 4's, in its order.
var targets = []target{
	{What: "counter add-only: pershard <= 0.5x one shared atomic.Int64",
		Num: "Counter/workload=add-only/impl=pershard/goroutines=100-2", Den: "Counter/workload=add-only/impl=atomic/goroutines=100-2", Max: 0.5,
		WhyMissed: "on this VM the atomic counter's cost under contention varies between runs far beyond its CI (15.0 ns/op in the reference make bench run, 3.5-5.1 ns/op in later runs), so this ratio moves with it; check results/raw for the run-to-run spread"},
	{What: "counter add-only: pershard faster than xsync/v3 Counter (p < 0.05)",
		Num: "Counter/workload=add-only/impl=pershard/goroutines=100-2", Den: "Counter/workload=add-only/impl=xsync/goroutines=100-2", Max: 1, Faster: true},
	{What: "counter add-only: pershard within 1.5x of padded per-goroutine slots",
		Num: "Counter/workload=add-only/impl=pershard/goroutines=100-2", Den: "Counter/workload=add-only/impl=padded-slots/goroutines=100-2", Max: 1.5,
		WhyMissed: "padded-slots gives each goroutine its slot for free; a counter shared by unknown goroutines must find one on every Add. pershard reads a per-goroutine cached CPU hint with no call, but that load and its masking sit on the add's address path: 1.45-2.26x across this machine's runs (1.9-2.4x when it called RDPID on every Add). BenchmarkSlotChoice in impls/pershard isolates the choice"},
	{What: "counter add-only, GOMAXPROCS 1: pershard within 1.5x of atomic.Int64",
		Num: "Counter/workload=add-only/impl=pershard/goroutines=100", Den: "Counter/workload=add-only/impl=atomic/goroutines=100", Max: 1.5},
	{What: "bucket always-grant, frozen clock: atomic <= 0.5x x/time/rate AllowN",
		Num: "Bucket/workload=always-grant/clock=frozen/impl=atomic/goroutines=100-2", Den: "Bucket/workload=always-grant/clock=frozen/impl=xrate/goroutines=100-2", Max: 0.5},
	{What: "bucket always-grant, frozen clock: pershard <= 0.25x x/time/rate AllowN",
		Num: "Bucket/workload=always-grant/clock=frozen/impl=pershard/goroutines=100-2", Den: "Bucket/workload=always-grant/clock=frozen/impl=xrate/goroutines=100-2", Max: 0.25},
	{What: "bucket always-grant, default clock: atomic <= 0.5x x/time/rate Allow()",
		Num: "Bucket/workload=always-grant/clock=real/impl=atomic/goroutines=100-2", Den: "Bucket/workload=always-grant/clock=real/impl=xrate-allow/goroutines=100-2", Max: 0.5},
	{What: "bucket always-grant, default clock: pershard <= 0.5x x/time/rate Allow()",
		Num: "Bucket/workload=always-grant/clock=real/impl=pershard/goroutines=100-2", Den: "Bucket/workload=always-grant/clock=real/impl=xrate-allow/goroutines=100-2", Max: 0.5},
	{What: "default clock: contend.DefaultClock.Now costs no more than time.Now",
		Num: "Floor/workload=clock-read/impl=monotonic/goroutines=1-2", Den: "Floor/workload=clock-read/impl=time-now/goroutines=1-2", Max: 1, OrSame: true},
	{What: "default clock: contend.DefaultClock.Now within 1.25x of runtime.nanotime (the vDSO floor)",
		Num: "Floor/workload=clock-read/impl=monotonic/goroutines=1-2", Den: "Floor/workload=clock-read/impl=nanotime/goroutines=1-2", Max: 1.25, OrSame: true},
	{What: "deny path, frozen clock: atomic deny costs no more than a grant",
		Num: "Bucket/workload=mostly-deny/clock=frozen/impl=atomic/goroutines=100-2", Den: "Bucket/workload=always-grant/clock=frozen/impl=atomic/goroutines=100-2", Max: 1, OrSame: true},
	{What: "deny path, frozen clock: pershard deny costs no more than a grant",
		Num: "Bucket/workload=mostly-deny/clock=frozen/impl=pershard/goroutines=100-2", Den: "Bucket/workload=always-grant/clock=frozen/impl=pershard/goroutines=100-2", Max: 1, OrSame: true,
		WhyMissed: "a grant and a denial share their start (the CPU hint and a load of that CPU's cache); a grant then does one CAS on that line, without the clock, while a correct denial must read the clock (the bucket may have refilled), the global word and the other caches. It writes nothing and is decided inline: 1.1-1.5x its grant across this machine's runs, from 2.0-2.4x before"},
	{What: "keyed, 10,000 keys, Zipf: xsync.MapOf limiter >= 2x the throughput of a mutex-guarded map",
		Num: "Keyed/workload=zipf/impl=xsync-mapof/goroutines=100-2", Den: "Keyed/workload=zipf/impl=mutex-map/goroutines=100-2", Max: 0.5},
	{What: "keyed, string keys, eviction on: keyed.Limiter >= 2x the throughput of go-limiter's memorystore",
		Num: "Keyed/workload=zipf-string/impl=xsync-mapof/goroutines=100-2", Den: "Keyed/workload=zipf-string/impl=go-limiter/goroutines=100-2", Max: 0.5},
}

// labImpls are the lab's own implementations, held to 0 allocs/op and to
// the accuracy checks; references and anti-patterns are not.
var labImpls = []string{"mutex", "reentrant", "rwmutex", "atomic", "pershard"}

type cell struct {
	values  []float64
	summary benchmath.Summary
	sample  *benchmath.Sample
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchcheck raw.txt")
		os.Exit(2)
	}
	ok, err := check(os.Args[1], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcheck:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// check reads path, prints every target with its measured ratio, and
// reports whether all were met.
func check(path string, w io.Writer) (bool, error) {
	cells, config, err := load(path)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "benchcheck %s (commit %s, %s, %s cores)\n\n", path, config["commit"], config["cpu"], config["cores"])
	fmt.Fprintf(w, "%-4s  %-92s  %8s  %8s  %s\n", "", "target", "ratio", "limit", "medians, p")
	all := true
	for _, t := range targets {
		num, den := cells[key{t.Num, "sec/op"}], cells[key{t.Den, "sec/op"}]
		if num == nil || den == nil {
			missing := t.Num
			if num != nil {
				missing = t.Den
			}
			fmt.Fprintf(w, "MISS  %-92s  %8s  %8s  no result for %s\n", t.What, "-", fmt.Sprint(t.Max), missing)
			all = false
			continue
		}
		ratio := num.summary.Center / den.summary.Center
		cmp := benchmath.AssumeNothing.Compare(num.sample, den.sample)
		pass := ratio <= t.Max
		if t.Faster {
			pass = pass && cmp.P < cmp.Alpha
		}
		if t.OrSame && !pass && cmp.P >= cmp.Alpha {
			pass = true
		}
		if len(num.values) < 10 || len(den.values) < 10 {
			pass = false // the issue asks for -count >= 10
		}
		status := "ok"
		if !pass {
			status, all = "MISS", false
		}
		fmt.Fprintf(w, "%-4s  %-92s  %8.3f  %8s  %.3gns / %.3gns, p=%.3f n=%d+%d\n", status, t.What, ratio, fmt.Sprint(t.Max),
			num.summary.Center*1e9, den.summary.Center*1e9, cmp.P, len(num.values), len(den.values))
		if !pass && t.WhyMissed != "" {
			fmt.Fprintf(w, "        why: %s\n", t.WhyMissed)
		}
	}

	// 0 allocs/op on every hot path of the lab's own implementations.
	var allocs []string
	measured := 0
	for k, c := range cells {
		if k.unit != "allocs/op" || !isLab(k.name) || strings.HasPrefix(k.name, "Correctness/") {
			continue
		}
		measured++
		if c.summary.Center != 0 || maxOf(c.values) != 0 {
			allocs = append(allocs, fmt.Sprintf("%s: %g allocs/op", k.name, maxOf(c.values)))
		}
	}
	sort.Strings(allocs)
	status := "ok"
	if len(allocs) > 0 || measured == 0 {
		status, all = "MISS", false
	}
	fmt.Fprintf(w, "%-4s  %-92s  %8d  %8s  of %d lab benchmarks\n", status, "0 allocs/op on every hot path of the lab's own implementations", len(allocs), "0", measured)
	for _, a := range allocs {
		fmt.Fprintf(w, "        %s\n", a)
	}

	// Accuracy: no target may be met by over-granting.
	for _, impl := range []string{"atomic", "pershard"} {
		worst, n := math.Inf(-1), 0
		for k, c := range cells {
			if k.unit == "grant-ratio" && strings.HasPrefix(k.name, "Correctness/check=grant-ratio/impl="+impl+"/") {
				worst, n = math.Max(worst, maxOf(c.values)), n+len(c.values)
			}
		}
		status := "ok"
		if n == 0 || worst > 1 {
			status, all = "MISS", false
		}
		fmt.Fprintf(w, "%-4s  %-92s  %8.4f  %8s  worst of %d samples\n", status, "accuracy: "+impl+" never grants more than capacity + rate x elapsed", worst, "1", n)
	}
	fmt.Fprintln(w)
	if all {
		fmt.Fprintln(w, "all targets met")
	} else {
		fmt.Fprintln(w, "some targets MISSED")
	}
	return all, nil
}

type key struct{ name, unit string }

// load reads path with benchfmt and summarises every (name, unit).
func load(path string) (map[key]*cell, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	cells := map[key]*cell{}
	config := map[string]string{}
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, nil, rec
		case *benchfmt.Result:
			for _, c := range rec.Config {
				if _, seen := config[c.Key]; !seen {
					config[c.Key] = string(c.Value)
				}
			}
			for _, v := range rec.Values {
				k := key{rec.Name.String(), v.Unit}
				if cells[k] == nil {
					cells[k] = &cell{}
				}
				cells[k].values = append(cells[k].values, v.Value)
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, nil, err
	}
	if len(cells) == 0 {
		return nil, nil, fmt.Errorf("%s: no benchmark results", path)
	}
	for _, c := range cells {
		c.sample = benchmath.NewSample(c.values, &benchmath.DefaultThresholds)
		c.summary = benchmath.AssumeNothing.Summary(c.sample, 0.95)
	}
	return cells, config, nil
}

func isLab(name string) bool {
	for _, impl := range labImpls {
		if strings.Contains(name, "/impl="+impl+"/") {
			return true
		}
	}
	return false
}

func maxOf(vs []float64) float64 {
	m := math.Inf(-1)
	for _, v := range vs {
		m = math.Max(m, v)
	}
	return m
}
