package main

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
)

// distLock is one distributed lock on one deployment: a column of the
// backends' comparison.
type distLock struct {
	g    groupID // RemoteLock, backend, deployment
	impl string
	info implInfo
}

func (l distLock) name() string { return fmt.Sprintf("%s/%s `%s`", l.g.Backend, l.g.Workload, l.impl) }

// distributedLocks lists every lock the remote benchmarks measured, in
// catalog order of backends and deployments.
func (r *report) distributedLocks() []distLock {
	var out []distLock
	groups := r.d.Groups("RemoteLock")
	for _, b := range r.cat.Backends {
		for _, d := range b.Deployments {
			for _, g := range groups {
				if g.Backend != b.Name || g.Workload != d.Name {
					continue
				}
				for _, impl := range r.d.Impls(g) {
					info, _ := r.reg.lookup(r.regFamily(g), impl)
					out = append(out, distLock{g, impl, info})
				}
			}
		}
	}
	return out
}

// faultScore counts the fault scenarios a lock survived, of those run on
// it, from faults.jsonl.
type faultScore struct{ survived, run int }

func (r *report) faultScores() map[string]faultScore {
	outcomes, err := r.readFaults()
	scores := map[string]faultScore{}
	if err != nil {
		return scores
	}
	for _, o := range outcomes {
		if o.Family != "lock" {
			continue // semaphores and buckets have their own rows
		}
		k := fmt.Sprintf("%s/%s `%s`", o.Backend, o.Deployment, o.Impl)
		s := scores[k]
		s.run++
		if o.Survived {
			s.survived++
		}
		scores[k] = s
	}
	return scores
}

// whichDistributedLock writes the backends' comparison: every distributed
// lock, side by side on the same work and the same faults, and a verdict
// per question generated from the numbers. It names no backend.
func (r *report) whichDistributedLock() error {
	locks := r.distributedLocks()
	if len(locks) == 0 {
		return nil
	}
	p := r.remoteProcs()
	top := "100"
	r.printf("### Which distributed lock\n\n")
	r.printf("Every distributed lock measured, on every deployment, side by side: Acquire + Release with 1 and %s contending goroutines (GOMAXPROCS %d), latency percentiles and Jain's fairness at %s, requests counted per operation, and the fault scenarios below it survived (of those run on it: a single server has no quorum to lose). *Fenced* means its leases carry a fencing token a resource can check (without one, a holder that stalls past its lease cannot be fenced off).\n\n", top, p, top)
	scores := r.faultScores()
	r.printf("| lock | guarantee | fenced | time/op, 1 | time/op, %s | p50 | p99 | p99.9 | round trips/op | Jain | longest wait | faults survived |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n", top)
	get := func(l distLock, gs, unit string, f func(float64) string) string {
		if c := r.d.Cell(r.id(l.g, l.impl, gs, p, unit)); c != nil {
			return f(c.Summary.Center)
		}
		return "–"
	}
	for _, l := range locks {
		fenced := "yes"
		if l.info.NoFencing {
			fenced = "no"
		}
		faults := "not run"
		if s, ok := scores[l.name()]; ok {
			faults = fmt.Sprintf("%d of %d", s.survived, s.run)
		}
		r.printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.name(), l.info.Guarantee, fenced,
			get(l, "1", "sec/op", fmtTime), get(l, top, "sec/op", fmtTime),
			get(l, top, "p50-sec", fmtTime), get(l, top, "p99-sec", fmtTime), get(l, top, "p999-sec", fmtTime),
			get(l, top, "roundtrips/op", sig3), get(l, top, "jain", sig3), get(l, top, "maxwait-sec", fmtTime), faults)
	}
	r.printf("\n")
	if c, err := r.distributedLatencyChart(locks, top, p); err != nil {
		return err
	} else if c != nil {
		if err := r.embed(c, "distributed-locks-latency", "every correct distributed lock: latency percentiles"); err != nil {
			return err
		}
	}
	r.distributedVerdicts(locks, top, p, scores)
	r.distributedHandOff(locks, top, p)
	return nil
}

// handOffTailLimit is the fair hand-off's target on the tail: at the top
// contention a lab lock's p99 Acquire + Release latency within this many
// times its p50 (a waiter that sleeps through releases shows a p99 a
// hundred times its p50).
const handOffTailLimit = 10

// distributedHandOff writes, per deployment, how each of the lab's own
// correct locks hands off under contention: its p99 against its p50 (the
// target is handOffTailLimit), and its time per operation against each
// reference lock measured on the same deployment, with significance.
func (r *report) distributedHandOff(locks []distLock, goroutines string, procs int) {
	cell := func(l distLock, unit string) *Cell { return r.d.Cell(r.id(l.g, l.impl, goroutines, procs, unit)) }
	var lines []string
	for _, lab := range locks {
		if lab.info.Reference || !lab.info.Correct() {
			continue
		}
		p50, p99, op := cell(lab, "p50-sec"), cell(lab, "p99-sec"), cell(lab, "sec/op")
		if p50 == nil || p99 == nil || op == nil || p50.Summary.Center <= 0 {
			continue
		}
		tail := p99.Summary.Center / p50.Summary.Center
		verdict := "within"
		if tail > handOffTailLimit {
			verdict = "outside"
		}
		line := fmt.Sprintf("%s: p99 %s, %s× its p50 (%s the %d× target)", lab.name(), fmtTime(p99.Summary.Center), sig3(tail), verdict, handOffTailLimit)
		var against []string
		for _, ref := range locks {
			if !ref.info.Reference || ref.g != lab.g {
				continue
			}
			rop := cell(ref, "sec/op")
			if rop == nil {
				continue
			}
			cmp := r.d.Compare(op, rop)
			ratio := rop.Summary.Center / op.Summary.Center
			s := fmt.Sprintf("%s× `%s`'s (p=%.3f)", sig3(ratio), ref.impl, cmp.P)
			if cmp.P >= cmp.Alpha {
				s = fmt.Sprintf("a tie with `%s` (%s×, p=%.3f)", ref.impl, sig3(ratio), cmp.P)
			}
			against = append(against, s)
		}
		if len(against) > 0 {
			line += "; throughput " + strings.Join(against, ", ")
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return
	}
	r.printf("**Hand-off under contention** (%s goroutines): each of the lab's own locks, its tail against its median, and its throughput against the references on the same deployment (above 1× is faster than the reference).\n\n", goroutines)
	for _, l := range lines {
		r.printf("- %s.\n", l)
	}
	r.printf("\n")
}

// distributedLatencyChart draws the latency percentiles of every correct
// distributed lock at goroutines, on a log axis.
func (r *report) distributedLatencyChart(locks []distLock, goroutines string, procs int) (*chart, error) {
	lo, hi := math.Inf(1), 0.0
	for _, l := range locks {
		for _, q := range quantiles {
			if c := r.d.Cell(r.id(l.g, l.impl, goroutines, procs, q.unit)); c != nil && c.Summary.Center > 0 {
				lo, hi = math.Min(lo, c.Summary.Center), math.Max(hi, c.Summary.Center)
			}
		}
	}
	if hi == 0 {
		return nil, nil
	}
	unit, k := timeUnit(math.Sqrt(lo * hi))
	var ss []series
	for _, l := range locks {
		if !l.info.Correct() {
			continue // the controls' latencies answer no question here
		}
		var pts errXY
		for i, q := range quantiles {
			if c := r.d.Cell(r.id(l.g, l.impl, goroutines, procs, q.unit)); c != nil && c.Summary.Center > 0 {
				pts = append(pts, cellPoint(c, float64(i+1), times(k)).positive())
			}
		}
		if len(pts) == 0 {
			continue
		}
		s := r.seriesOf(l.g, l.impl, pts)
		s.label = fmt.Sprintf("%s\n  %s/%s", s.label, l.g.Backend, l.g.Workload)
		ss = append(ss, s)
	}
	var ticks plot.ConstantTicks
	for i, q := range quantiles {
		ticks = append(ticks, plot.Tick{Value: float64(i + 1), Label: q.label})
	}
	title := fmt.Sprintf("every correct distributed lock: Acquire + Release latency, %s goroutines", goroutines)
	c, err := lineChart(title, "percentile (marks spread within each column)", unit+" (log scale)", ss,
		lineOpts{logY: true, xTicks: ticks, noLines: true, spread: 0.6, shadeFrom: math.NaN()})
	if err != nil {
		return nil, err
	}
	var left []string
	for _, l := range locks {
		if !l.info.Correct() {
			left = append(left, l.impl)
		}
	}
	if len(left) > 0 {
		c.note("not shown: the broken controls %s (in the table)", strings.Join(left, ", "))
	}
	return c, nil
}

// distributedVerdicts writes the generated answers: the fastest lock, the
// fastest fenced one, the most robust, and each pair of backends compared
// by their fastest correct lock, with the significance of each difference
// (a difference with p >= 0.05 is a tie).
func (r *report) distributedVerdicts(locks []distLock, goroutines string, procs int, scores map[string]faultScore) {
	type ranked struct {
		l distLock
		c *Cell
	}
	var correct []ranked
	for _, l := range locks {
		if !l.info.Correct() {
			continue
		}
		if c := r.d.Cell(r.id(l.g, l.impl, goroutines, procs, "sec/op")); c != nil {
			correct = append(correct, ranked{l, c})
		}
	}
	if len(correct) == 0 {
		return
	}
	sort.SliceStable(correct, func(i, j int) bool { return correct[i].c.Summary.Center < correct[j].c.Summary.Center })
	compare := func(a, b ranked) string {
		cmp := r.d.Compare(a.c, b.c)
		ratio := b.c.Summary.Center / a.c.Summary.Center
		s := fmt.Sprintf("%s× (p=%.3f)", sig3(ratio), cmp.P)
		if cmp.P >= cmp.Alpha {
			s = fmt.Sprintf("a tie: %s× with p=%.3f", sig3(ratio), cmp.P)
		}
		return s
	}
	r.printf("**Verdicts**, generated from the table (%s goroutines):\n\n", goroutines)
	best := correct[0]
	if len(correct) > 1 {
		r.printf("- **Fastest:** %s, %s per operation; against the next, %s: %s.\n", best.l.name(), fmtTime(best.c.Summary.Center), correct[1].l.name(), compare(best, correct[1]))
	} else {
		r.printf("- **Fastest:** %s, the only correct lock measured.\n", best.l.name())
	}
	for _, c := range correct {
		if !c.l.info.NoFencing {
			if c.l.name() != best.l.name() {
				r.printf("- **Fastest with a fencing token:** %s; the fastest overall hands out none, and is %s faster.\n", c.l.name(), compare(best, c))
			} else {
				r.printf("- **Fastest with a fencing token:** the fastest overall.\n")
			}
			break
		}
	}
	var robust []string
	for _, l := range locks {
		if s, ok := scores[l.name()]; ok && l.info.Correct() && s.survived == s.run {
			robust = append(robust, fmt.Sprintf("%s (%d)", l.name(), s.run))
		}
	}
	if len(robust) > 0 {
		r.printf("- **Survived every fault scenario run on it** (how many): %s. The fault table says which scenarios each deployment has.\n", strings.Join(robust, ", "))
	}
	// Robustness by backend: the fault cells its correct locks survived.
	var byBackend []string
	for _, b := range r.cat.Backends {
		var total faultScore
		for _, l := range locks {
			if s, ok := scores[l.name()]; ok && l.g.Backend == b.Name && l.info.Correct() {
				total.survived += s.survived
				total.run += s.run
			}
		}
		if total.run > 0 {
			byBackend = append(byBackend, fmt.Sprintf("%s %d of %d", b.Name, total.survived, total.run))
		}
	}
	if len(byBackend) > 1 {
		r.printf("- **Faults survived, by backend** (its correct locks, every deployment, every scenario run on them; a failure a design declares counts against it): %s.\n", strings.Join(byBackend, "; "))
	}
	r.designNotServer(locks, scores)
	// Backends pairwise, each by its fastest correct lock.
	var perBackend []ranked
	seen := map[string]bool{}
	for _, c := range correct {
		if !seen[c.l.g.Backend] {
			seen[c.l.g.Backend] = true
			perBackend = append(perBackend, c)
		}
	}
	if len(perBackend) > 1 {
		var parts []string
		for i := 1; i < len(perBackend); i++ {
			parts = append(parts, fmt.Sprintf("than %s's %s, %s", perBackend[i].l.g.Backend, perBackend[i].l.name(), compare(perBackend[0], perBackend[i])))
		}
		r.printf("- **Backend against backend**, each by its fastest correct lock: %s's %s is faster %s.\n", perBackend[0].l.g.Backend, perBackend[0].l.name(), strings.Join(parts, "; "))
	}
	r.printf("\n")
}

// designNotServer writes what the fault table says about where robustness
// comes from, for the source article's claim that one server is more
// robust than another: the lab's own locks against the broken controls
// (the article's designs), by backend.
func (r *report) designNotServer(locks []distLock, scores map[string]faultScore) {
	var lab, controls faultScore
	var perBackend []string
	for _, b := range r.cat.Backends {
		var ctl faultScore
		for _, l := range locks {
			s, ok := scores[l.name()]
			if !ok || l.g.Backend != b.Name {
				continue
			}
			switch {
			case !l.info.Correct():
				ctl.survived += s.survived
				ctl.run += s.run
			case !l.info.Reference:
				lab.survived += s.survived
				lab.run += s.run
			}
		}
		if ctl.run > 0 {
			perBackend = append(perBackend, fmt.Sprintf("on %s %d of %d", b.Name, ctl.survived, ctl.run))
			controls.survived += ctl.survived
			controls.run += ctl.run
		}
	}
	if lab.run == 0 || controls.run == 0 {
		return
	}
	verdict := "so robustness here belongs to the design, not to the server"
	if lab.survived < lab.run {
		verdict = "and some of the lab's own designs failed a scenario: see the table"
	}
	r.printf("- **Design or server?** The lab's own locks survived %d of the %d fault scenarios run on them, on every backend; the source articles' designs, run as broken controls, survived %s; %s.\n", lab.survived, lab.run, strings.Join(perBackend, ", "), verdict)
}
