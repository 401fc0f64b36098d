package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/contend-lab/contend/catalog"
	"github.com/contend-lab/contend/linearize"
)

// historiesFile is where make bench writes the summaries of the histories
// it checked (linearize.Summary, one JSON line each), beside the raw
// results; violationFile is the drawing of a control's violation it
// commits, relative to the report.
const (
	historiesFile = "histories.jsonl"
	violationFile = "histories/naive-lock-violation.html"
)

// historyRow is one row of the checked-histories table: an implementation
// in a kind of scenario, summed.
type historyRow struct {
	family, impl, kind      string
	details                 []string // what distinguishes the row's scenarios ("GOMAXPROCS 2")
	histories, ops, illegal int
	verdict                 porcupine.CheckResult
}

// where is the row's scenarios in words: "stress, GOMAXPROCS 1, 2, 8".
func (h *historyRow) where() string {
	if len(h.details) == 0 {
		return h.kind
	}
	common := ""
	for _, p := range []string{"GOMAXPROCS "} {
		all := true
		for _, d := range h.details {
			all = all && strings.HasPrefix(d, p)
		}
		if all {
			common = p
		}
	}
	var ds []string
	for _, d := range h.details {
		ds = append(ds, strings.TrimPrefix(d, common))
	}
	return h.kind + ", " + common + strings.Join(ds, ", ")
}

func (h *historyRow) add(s linearize.Summary) {
	h.histories += s.Histories
	h.ops += s.Ops
	h.illegal += s.Illegal
	switch {
	case s.Verdict == porcupine.Illegal || h.verdict == porcupine.Illegal:
		h.verdict = porcupine.Illegal
	case s.Verdict == porcupine.Unknown || h.verdict == porcupine.Unknown:
		h.verdict = porcupine.Unknown
	default:
		h.verdict = porcupine.Ok
	}
}

// checkedHistories writes the table of every history porcupine checked in
// this run: the stress histories of every exact counter, lock and
// semaphore, in process and remote; the controls'; and the one history of
// every fault scenario.
func (r *report) checkedHistories() error {
	dir := r.rawDir
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	sums, err := linearize.ReadJSONLines(filepath.Join(dir, historiesFile))
	if errors.Is(err, os.ErrNotExist) {
		r.printf("### Linearizability: checked histories\n\nNot run in this run (`%s` is missing; make bench writes it).\n\n", historiesFile)
		return nil
	}
	if err != nil {
		return err
	}
	var rows []*historyRow
	index := map[[3]string]*historyRow{}
	row := func(family, impl, scenario string) *historyRow {
		kind, detail, _ := strings.Cut(scenario, ", ")
		k := [3]string{family, impl, kind}
		h := index[k]
		if h == nil {
			h = &historyRow{family: family, impl: impl, kind: kind}
			index[k] = h
			rows = append(rows, h)
		}
		if detail != "" && !contains(h.details, detail) {
			h.details = append(h.details, detail)
		}
		return h
	}
	for _, s := range sums {
		row(s.Family, s.Impl, s.Scenario).add(s)
	}
	if faults, err := r.readFaults(); err == nil {
		for _, o := range faults {
			if o.Linearizable == "" {
				continue
			}
			s := linearize.Summary{Histories: 1, Ops: o.Ops, Verdict: porcupine.CheckResult(o.Linearizable)}
			if s.Verdict == porcupine.Illegal {
				s.Illegal = 1
			}
			row(o.Backend+" "+o.Family, o.Impl, "fault scenarios, "+o.Deployment).add(s)
		}
	}
	r.printf("### Linearizability: checked histories\n\n")
	r.printf("Every history the harness recorded in this run, checked by [porcupine](https://github.com/anishathalye/porcupine) against the model of its family (package `linearize`): is there one order of the operations, each placed between its call and its return, that the sequential object would have produced? An operation whose outcome its client never learned (a network error) may or may not have taken effect, as Jepsen checks it; a remote lease's expiry is an event placed no earlier than its holder's TTL said. *Stress* histories are short bursts of 6 to 16 clients (the check is exponential in overlapping operations); *control* histories are recorded until one is not linearizable; a *fault scenario* records one history of its clients (see the fault table). Correct implementations must be Ok everywhere; the controls must not be.\n\n")
	r.printf("| family | implementation | where | histories | operations | verdict |\n|---|---|---|---:|---:|---|\n")
	for _, h := range rows {
		verdict := string(h.verdict)
		if h.verdict == porcupine.Illegal {
			verdict = fmt.Sprintf("**not linearizable** (%d of %d)", h.illegal, h.histories)
			if i, ok := r.reg.lookup(h.family, h.impl); ok && i.Guarantee == catalog.Approximate {
				verdict += ": approximate by its guarantee, which this shows"
			} else if ok && i.Correct() && h.kind == "fault scenarios" {
				verdict += " in a scenario its design declares it fails"
			}
		}
		r.printf("| %s | `%s` | %s | %d | %d | %s |\n", h.family, h.impl, mdEscape(h.where()), h.histories, h.ops, verdict)
	}
	r.printf("\n")
	if _, err := os.Stat(filepath.Join(filepath.Dir(r.chartDir), violationFile)); err == nil {
		r.printf("What a violation looks like: [porcupine's drawing](%s) of a history of the racy `naive` lock in which two clients held it at once (open it in a browser; the longest order the checker could build stops where no order explains the next operation).\n\n", violationFile)
	}
	return nil
}
