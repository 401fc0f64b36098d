package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// remoteTier writes the remote tier's section: per backend, throughput by
// goroutine count, latency percentiles and round trips per operation, and
// the fault table; or why it was not measured. It names no backend: they
// come from the catalog and the data.
func (r *report) remoteTier() error {
	r.printf("## Beyond one process\n\n")
	var servers []string
	for _, b := range r.cat.Backends {
		v := r.d.ConfigValue("server-" + b.Name)
		if v == "" {
			v = "not recorded"
		}
		servers = append(servers, fmt.Sprintf("%s (%s)", b.Name, v))
	}
	locks, buckets := r.d.Groups("RemoteLock"), r.d.Groups("RemoteBucket")
	if len(locks)+len(buckets) == 0 {
		status := r.d.ConfigValue("remote-tier")
		if status == "" {
			status = "not run (no BenchmarkRemote results in the raw files)"
		}
		r.printf("**The remote tier was not measured in this run: %s.** Its correctness tests (`harness.TestRemote*` and each backend's package under `remote/`) run in `make test`, which installs the servers.\n\n", status)
		return nil
	}
	r.printf("The same contracts with their state in servers (`remote/`), on throw-away processes the benchmarks start on loopback with their data on tmpfs. Servers in this run: %s. One operation is Acquire + Release for a lock, one `TryTake(1)` for a bucket; time/op is wall time per operation of all goroutines together, latency is one operation as its goroutine saw it, round trips are counted by each client, not assumed, and Jain's index is over the goroutines' operation counts. The harness checks these implementations with the same `RunLock`, `RunSemaphore` and `RunBucket` as the in-process ones (`harness/remote_test.go`), and injects the faults below (`harness/remote_faults_test.go`).\n\n", strings.Join(servers, ", "))
	if err := r.faultTable(); err != nil {
		return err
	}
	if err := r.whichDistributedLock(); err != nil {
		return err
	}
	p := r.remoteProcs()
	for _, b := range r.cat.Backends {
		for _, d := range b.Deployments {
			for _, g := range append(locks, buckets...) {
				if g.Backend != b.Name || g.Workload != d.Name {
					continue
				}
				if err := r.remoteGroup(g, p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// remoteProcs is the GOMAXPROCS the remote benchmarks ran at: the main one
// if they ran there, else the highest they ran at.
func (r *report) remoteProcs() int {
	procs := r.d.Procs("RemoteLock", "RemoteBucket")
	if len(procs) == 0 {
		return r.mainP
	}
	p := procs[len(procs)-1]
	for _, q := range procs {
		if q == r.mainP {
			p = q
		}
	}
	return p
}

// remoteGroup writes one backend deployment's locks or buckets: a chart
// and a table.
func (r *report) remoteGroup(g groupID, p int) error {
	isLock := g.Family == "RemoteLock"
	what := fmt.Sprintf("%s, %s: ", g.Backend, g.Workload)
	if isLock {
		what += "locks, Acquire + Release"
	} else {
		what += "buckets, TryTake(1)"
	}
	impls := r.d.Impls(g)
	gcs := r.d.GoroutineCounts(g)
	var c *chart
	var err error
	var title string
	if isLock {
		// What a lock user reads is how long one waits: percentiles, at
		// the most contended goroutine count, on a log scale.
		top := gcs[len(gcs)-1]
		title = fmt.Sprintf("%s: latency percentiles, %s goroutines", what, top)
		c, err = r.percentileChart(g, top, p, title, "Acquire + Release")
	} else {
		title = fmt.Sprintf("%s: time per operation by goroutines", what)
		c, err = r.goroutineBars(g, p, title)
	}
	if err != nil {
		return err
	}
	r.printf("### %s\n\n", what)
	if err := r.embed(c, r.chartName(g, map[bool]string{true: "latency", false: "by-goroutines"}[isLock]), title); err != nil {
		return err
	}
	r.printf("| impl | goroutines | time/op | 95%% CI | latency p50 | p99 | p99.9 | round trips/op |")
	if isLock {
		r.printf(" Jain | longest |")
	}
	r.printf("\n|---|---|---|---|---|---|---|---|%s\n", map[bool]string{true: "---|---|", false: ""}[isLock])
	for _, impl := range impls {
		for _, gs := range gcs {
			cell := r.d.Cell(r.id(g, impl, gs, p, "sec/op"))
			if cell == nil {
				continue
			}
			get := func(unit string, f func(float64) string) string {
				if c := r.d.Cell(r.id(g, impl, gs, p, unit)); c != nil {
					return f(c.Summary.Center)
				}
				return ""
			}
			r.printf("| `%s` | %s | %s | %s | %s | %s | %s | %s |", r.label(r.regFamily(g), impl), gs, fmtTime(cell.Summary.Center), ciString(cell),
				get("p50-sec", fmtTime), get("p99-sec", fmtTime), get("p999-sec", fmtTime), get("roundtrips/op", sig3))
			if isLock {
				r.printf(" %s | %s |", get("jain", sig3), get("maxwait-sec", fmtTime))
			}
			r.printf("\n")
		}
	}
	r.printf("\n")
	return nil
}

// faultOutcome is one line of faults.jsonl (harness.FaultOutcome).
type faultOutcome struct {
	Scenario   string `json:"scenario"`
	Backend    string `json:"backend"`
	Deployment string `json:"deployment"`
	Family     string `json:"family"`
	Impl       string `json:"impl"`
	Survived   bool   `json:"survived"`
	// Linearizable is porcupine's verdict on the scenario's recorded
	// history: "Ok", "Illegal", "Unknown", or "" when none was checked.
	Linearizable string `json:"linearizable"`
	Ops          int    `json:"ops"`
	Expected     bool   `json:"expected"`
	Evidence     string `json:"evidence"`
}

// faultTable writes the fault table from faults.jsonl beside the raw
// results, if there is one: scenario by implementation, survived or failed,
// with the measured evidence.
func (r *report) faultTable() error {
	outcomes, err := r.readFaults()
	if os.IsNotExist(err) {
		r.printf("No fault table in this run (`%s` is missing; bench.sh writes it when the remote tier runs).\n\n", filepath.ToSlash(r.faultsPath()))
		return nil
	}
	if err != nil {
		return err
	}
	// One column per implementation (and deployment, when it runs on
	// several), in the order the scenarios recorded them.
	var scenarios, impls []string
	cell := map[[2]string]faultOutcome{}
	for _, o := range outcomes {
		if !contains(scenarios, o.Scenario) {
			scenarios = append(scenarios, o.Scenario)
		}
		col := o.column()
		if !contains(impls, col) {
			impls = append(impls, col)
		}
		cell[[2]string{o.Scenario, col}] = o
	}
	r.printf("### Faults: what each design survives\n\n")
	r.printf("From `harness.TestRemoteFaults`, run by `make bench` on servers it starts, kills, pauses (SIGSTOP) and restarts. Each cell is measured; the test asserts it against what the design promises, so *expected* failures of the controls are checked too. A column is a backend, its deployment and an implementation (a semaphore runs the lock scenarios as a lock of one permit); *n/a* marks a scenario the deployment does not have (a quorum needs 3 servers, a leader a replicated cluster). *lin.*: the history every client of the scenario recorded (with each lease's expiry placed no earlier than its holder's TTL said) is linearizable by porcupine against the lock model; *not lin.*: it is not, which no correct design may show.\n\n")
	r.printf("| scenario |")
	for _, col := range impls {
		r.printf(" %s |", col)
	}
	r.printf("\n|---|%s\n", strings.Repeat("---|", len(impls)))
	for _, sc := range scenarios {
		r.printf("| %s |", mdEscape(sc))
		for _, impl := range impls {
			o, ok := cell[[2]string{sc, impl}]
			lin := map[string]string{"Ok": ", lin.", "Illegal": ", **not lin.**", "Unknown": ", lin. unknown"}[o.Linearizable]
			switch {
			case !ok:
				r.printf(" n/a |")
			case o.Survived:
				r.printf(" survived%s |", lin)
			case !o.Expected:
				r.printf(" **failed** (as expected)%s |", lin)
			default:
				r.printf(" **FAILED, unexpectedly**%s |", lin)
			}
		}
		r.printf("\n")
	}
	r.printf("\nThe evidence for every cell is in [details.md](details.md#fault-evidence).\n\n")
	r.toDetails(func() {
		r.printf("## Fault evidence\n\nWhat `harness.TestRemoteFaults` measured in each scenario of REPORT.md's fault table.\n\n")
		for _, o := range outcomes {
			r.printf("- %s, %s: %s\n", o.Scenario, o.column(), mdEscape(o.Evidence))
		}
		r.printf("\n")
	})
	return nil
}

// faultsPath is faults.jsonl beside the raw results.
func (r *report) faultsPath() string {
	dir := r.rawDir
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	return filepath.Join(dir, "faults.jsonl")
}

// readFaults reads faults.jsonl beside the raw results.
func (r *report) readFaults() ([]faultOutcome, error) {
	path := r.faultsPath()
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var outcomes []faultOutcome
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var o faultOutcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		outcomes = append(outcomes, o)
	}
	return outcomes, nil
}

// column is the fault table's column of o: "backend/deployment `impl`",
// with "(bucket)" for a bucket.
func (o faultOutcome) column() string {
	c := fmt.Sprintf("%s/%s `%s`", o.Backend, o.Deployment, o.Impl)
	if o.Family != "" && o.Family != "lock" {
		c += " (" + o.Family + ")"
	}
	return c
}
