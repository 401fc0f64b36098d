package main

import (
	"fmt"
	"math"
	"sort"

	"strings"

	"github.com/contend-lab/contend/catalog"
)

// useCase is one row of "What to use": the benchmark group that measures
// it, the registry family of its candidates, and whether exactness is the
// point (then an approximate implementation is recommended only with a
// warning, and an exact one is recommended beside it).
type useCase struct {
	name   string
	group  groupID
	family string
	exact  bool
	why    string // what the measured workload is
}

// useCases lists "What to use", in order. A new use case is a row here; a
// new implementation needs none: candidates come from the registry. The
// distributed use cases get one row per backend deployment measured.
func (r *report) useCases() []useCase {
	cases := []useCase{
		{"hot counter (many writers, rare reads)", groupID{Family: "Counter", Workload: "add-only"}, "counter", false, "`Add` only"},
		{"counter you also read often", groupID{Family: "Counter", Workload: "read-mostly"}, "counter", true, "1 `Add` in 16 operations, the rest `Load`"},
		{"per-process rate limiter", groupID{Family: "Bucket", Workload: "near-limit", Clock: "real"}, "bucket", true, "demand just above the rate, real clock"},
		{"per-client rate limiter in a server", groupID{Family: "Keyed", Workload: "zipf"}, "keyed", true, "10,000 keys, Zipf access"},
		{"lock in process", groupID{Family: "Lock", Workload: "work"}, "lock", true, "about 50 ns of work inside"},
		{"semaphore in process", groupID{Family: "Semaphore", Workload: "work"}, "semaphore", true, "4 permits, about 50 ns of work inside"},
	}
	for _, rc := range []struct{ family, name, why string }{
		{"RemoteLock", "distributed lock", "Acquire + Release"},
		{"RemoteBucket", "distributed rate limiter", "TryTake(1)"},
	} {
		for _, g := range r.d.Groups(rc.family) {
			cases = append(cases, useCase{fmt.Sprintf("%s (%s, %s)", rc.name, g.Backend, g.Workload), g, r.regFamily(g), true,
				fmt.Sprintf("%s on loopback %s", rc.why, g.Backend)})
		}
	}
	return cases
}

// advice is the decision for one use case, before it is printed.
type advice struct {
	pick      []string // the recommendation; two names when they tie
	tie       bool     // the two are not significantly different
	runnerUp  string   // the next candidate; "" when there is none
	where     string   // goroutines and GOMAXPROCS of the evidence
	ratio     float64  // runner-up's time / the pick's: how much faster the pick is
	lo, hi    float64  // the ratio's range from the two 95% CIs; NaN without CIs
	p         float64  // Mann-Whitney p-value of pick vs runner-up
	notes     []string // what the reader gives up, flips, core-count caveats
	excluded  []string // faster implementations not recommended, and why
	guarantee string   // of the (first) pick, from the registry
}

// candidates returns the implementations measured in g that the registry
// holds to the family's invariants and that declare no stress deviation.
func (r *report) candidates(u useCase, g groupID) (ok, excluded []string) {
	for _, impl := range r.d.Impls(g) {
		info, known := r.reg.lookup(u.family, impl)
		switch {
		case !known && benchOnly[impl] != "":
			excluded = append(excluded, fmt.Sprintf("`%s` (benchmark-only)", impl))
		case !known:
			excluded = append(excluded, fmt.Sprintf("`%s` (not in the registry)", impl))
		case !info.Correct():
			excluded = append(excluded, fmt.Sprintf("`%s` (%s)", impl, info.Guarantee))
		case info.Deviates[catalog.StressDeviation] != "":
			excluded = append(excluded, fmt.Sprintf("`%s` (over-grants under contention, see What goes wrong)", impl))
		default:
			ok = append(ok, impl)
		}
	}
	return ok, excluded
}

// adviseAt ranks the candidates by median time/op at goroutines and procs.
func (r *report) rank(g groupID, impls []string, goroutines string, procs int) []*Cell {
	var cs []*Cell
	for _, impl := range impls {
		if c := r.d.Cell(r.id(g, impl, goroutines, procs, "sec/op")); c != nil {
			cs = append(cs, c)
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Summary.Center < cs[j].Summary.Center })
	return cs
}

// significant reports whether a and b differ at benchstat's alpha.
func (r *report) significant(a, b *Cell) (bool, float64) {
	cmp := r.d.Compare(a, b)
	return cmp.P < cmp.Alpha, cmp.P
}

// adviceGoroutines is where a use case is judged: 100 goroutines, the
// busy server, or the most the group measured.
func (r *report) adviceGoroutines(g groupID) string {
	gcs := r.d.GoroutineCounts(g)
	if contains(gcs, "100") {
		return "100"
	}
	return gcs[len(gcs)-1]
}

// advise applies the rules: only correct candidates; a difference with
// p >= 0.05 is a tie; an approximate pick where exactness is the point
// comes with an exact alternative; a ranking that changes at another
// GOMAXPROCS or goroutine count says so, and one that changes only beyond
// the machine's cores says this machine cannot tell.
func (r *report) advise(u useCase) (advice, bool) {
	g := u.group
	impls, excluded := r.candidates(u, g)
	if len(impls) == 0 {
		return advice{}, false
	}
	gs := r.adviceGoroutines(g)
	procs := r.mainP
	if g.Backend != "" {
		ps := r.procsOf(g)
		procs = ps[len(ps)-1]
	}
	ranked := r.rank(g, impls, gs, procs)
	if len(ranked) == 0 {
		return advice{}, false
	}
	a := advice{where: fmt.Sprintf("%s goroutines, GOMAXPROCS %d", gs, procs), lo: math.NaN(), hi: math.NaN(), p: math.NaN(), excluded: excluded}
	best := ranked[0]
	info := func(c *Cell) implInfo { i, _ := r.reg.lookup(u.family, c.ID.Impl); return i }
	// Exactness is the point: the fastest exact candidate is the pick, and
	// a faster approximate one is named with what it gives up.
	if u.exact && info(best).Guarantee != catalog.Exact {
		for i, c := range ranked {
			if info(c).Guarantee != catalog.Exact {
				continue
			}
			fast := ranked[0]
			verdict := "significantly"
			if sig, p := r.significant(c, fast); !sig {
				verdict = fmt.Sprintf("a tie, p=%.3f", p)
			} else {
				verdict = fmt.Sprintf("p=%.3f", p)
			}
			a.notes = append(a.notes, fmt.Sprintf("`%s` is %s× faster (%s) but %s (%s): not the pick where exactness is the point", fast.ID.Impl, sig3(c.Summary.Center/fast.Summary.Center), verdict, info(fast).Guarantee, info(fast).Summary))
			best = c
			ranked = ranked[i:]
			break
		}
	}
	a.pick = []string{best.ID.Impl}
	a.guarantee = guaranteeText(info(best))
	if len(ranked) > 1 {
		runner := ranked[1]
		a.runnerUp = runner.ID.Impl
		a.ratio = runner.Summary.Center / best.Summary.Center
		if best.HasCI && runner.HasCI && best.Summary.Lo > 0 && best.Summary.Hi > 0 {
			a.lo, a.hi = runner.Summary.Lo/best.Summary.Hi, runner.Summary.Hi/best.Summary.Lo
		}
		sig, p := r.significant(best, runner)
		a.p = p
		if !best.HasCI || !runner.HasCI {
			a.notes = append(a.notes, fmt.Sprintf("only %d and %d samples: no 95%% CI, and too few for a small p-value, so a tie may only mean too few samples", len(best.Values), len(runner.Values)))
		}
		if !sig {
			a.tie = true
			a.pick = append(a.pick, runner.ID.Impl)
		}
		if rg := guaranteeText(info(runner)); rg != a.guarantee {
			a.notes = append(a.notes, fmt.Sprintf("`%s` is %s", runner.ID.Impl, rg))
		}
	}
	if info(best).Guarantee == catalog.Approximate {
		a.notes = append(a.notes, fmt.Sprintf("gives up exactness: %s", info(best).Summary))
	}
	a.notes = append(a.notes, r.flips(u, g, impls, best, gs, procs)...)
	return a, true
}

// flips lists where another candidate is significantly faster than best:
// at other goroutine counts and GOMAXPROCS. Beyond the machine's cores the
// ranking is oversubscription, and the machine cannot tell what more cores
// would do.
func (r *report) flips(u useCase, g groupID, impls []string, best *Cell, gs string, procs int) []string {
	type beat struct {
		procs []int
		most  float64
	}
	within, beyond := map[string]*beat{}, map[string]*beat{}
	var order []string
	for _, p := range r.procsOf(g) {
		for _, n := range r.d.GoroutineCounts(g) {
			if p == procs && n == gs {
				continue
			}
			b := r.d.Cell(r.id(g, best.ID.Impl, n, p, "sec/op"))
			if b == nil {
				continue
			}
			for _, c := range r.rank(g, impls, n, p) {
				if c.ID.Impl == best.ID.Impl || c.Summary.Center >= b.Summary.Center {
					continue
				}
				if sig, _ := r.significant(b, c); !sig {
					continue
				}
				m := within
				if r.cores > 0 && p > r.cores {
					m = beyond
				}
				w := m[c.ID.Impl]
				if w == nil {
					w = &beat{}
					m[c.ID.Impl] = w
					if !contains(order, c.ID.Impl) {
						order = append(order, c.ID.Impl)
					}
				}
				if len(w.procs) == 0 || w.procs[len(w.procs)-1] != p {
					w.procs = append(w.procs, p)
				}
				w.most = math.Max(w.most, b.Summary.Center/c.Summary.Center)
				break // the fastest that beats it there
			}
		}
	}
	list := func(m map[string]*beat) string {
		var out []string
		for _, impl := range order {
			if w := m[impl]; w != nil {
				var ps []string
				for _, p := range w.procs {
					ps = append(ps, fmt.Sprint(p))
				}
				out = append(out, fmt.Sprintf("`%s` at GOMAXPROCS %s (up to %s× faster)", impl, strings.Join(ps, ", "), sig3(w.most)))
			}
		}
		return strings.Join(out, ", ")
	}
	var notes []string
	if len(within) > 0 {
		notes = append(notes, "flips at other goroutine counts or GOMAXPROCS: "+list(within))
	}
	if len(beyond) > 0 {
		notes = append(notes, fmt.Sprintf("depends on the core count, which this %d-core machine cannot tell: oversubscribed, %s", r.cores, list(beyond)))
	}
	return notes
}

// procsOf returns the GOMAXPROCS values measured in g.
func (r *report) procsOf(g groupID) []int {
	seen := map[int]bool{}
	var ps []int
	for id := range r.d.Cells {
		if id.group() == g && !seen[id.Procs] {
			seen[id.Procs] = true
			ps = append(ps, id.Procs)
		}
	}
	sort.Ints(ps)
	return ps
}

// guaranteeText is an implementation's guarantee as the registry states it.
func guaranteeText(i implInfo) string {
	s := i.Guarantee.String()
	if i.NoFencing {
		s += ", no fencing token"
	}
	return s
}

// whatToUse writes the first section: one row per use case.
func (r *report) whatToUse() error {
	r.printf("## What to use\n\n")
	r.printf("Decided by rules in `cmd/report` (`advise`) from this run, not written by hand: only implementations the registry holds to their invariants are candidates; the pick is the fastest median time/op where the use case is measured; a difference with p ≥ 0.05 (Mann-Whitney, as benchstat) is a **tie** and printed as one; where exactness is the point an approximate implementation is not the pick without saying so; a ranking that changes at another GOMAXPROCS or goroutine count says so. *Ratio* is the runner-up's median over the pick's, with the range the two 95%% CIs allow.\n\n")
	r.printf("| use case | use | guarantee | runner-up | evidence | what you give up, and caveats |\n|---|---|---|---|---|---|\n")
	for _, u := range r.useCases() {
		a, ok := r.advise(u)
		if !ok {
			r.printf("| %s | not measured in this run | | | | |\n", u.name)
			continue
		}
		pick := "`" + strings.Join(a.pick, "` or `") + "`"
		if a.tie {
			pick += " (tie)"
		}
		evidence := ""
		if a.runnerUp != "" {
			evidence = fmt.Sprintf("%s×", sig3(a.ratio))
			if !math.IsNaN(a.lo) {
				evidence += fmt.Sprintf(" [%s, %s]", sig3(a.lo), sig3(a.hi))
			}
			if a.tie {
				evidence = "tie: " + evidence
			}
			evidence += fmt.Sprintf(", p=%.3f", a.p)
		}
		if a.runnerUp == "" {
			evidence = "the only candidate measured"
		}
		evidence += "; " + a.where + "; " + u.why
		runner := ""
		switch {
		case a.tie:
			runner = "(tied in use)"
		case a.runnerUp != "":
			runner = "`" + a.runnerUp + "`"
		}
		notes := a.notes
		if len(a.excluded) > 0 {
			notes = append(notes, "not candidates: "+strings.Join(a.excluded, ", "))
		}
		r.printf("| %s | %s | %s | %s | %s | %s |\n", u.name, pick, a.guarantee, runner, evidence, mdEscape(strings.Join(notes, "; ")))
	}
	r.printf("\n")
	if r.cores > 0 {
		r.printf("**Scaling past %d cores is unmeasured**: this machine has %d cores, so a recommendation that depends on more parallelism cannot be decided here. `make bench CPU=1,2,4,8,16,32` on a larger machine regenerates this table.\n\n", r.cores, r.cores)
	}
	return nil
}
