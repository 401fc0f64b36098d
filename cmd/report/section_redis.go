package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// redisTier writes the Redis tier's section: throughput by goroutine count,
// latency percentiles and round trips per operation, or why it was skipped.
func (r *report) redisTier() error {
	r.printf("## Beyond one process: Redis\n\n")
	status := r.d.ConfigValue("redis-tier")
	locks, buckets := r.d.Groups("RedisLock"), r.d.Groups("RedisBucket")
	if len(locks)+len(buckets) == 0 {
		if status == "" {
			status = "not run (no BenchmarkRedis results in the raw files)"
		}
		r.printf("**The Redis tier was not measured in this run: %s.** Its correctness tests (`impls/redis`, `harness.TestRemote*`) run in `make test`, which installs redis-server.\n\n", status)
		return nil
	}
	if err := r.faultTable(); err != nil {
		return err
	}
	r.printf("The same contracts with their state in Redis (`impls/redis`), on throw-away `redis-server` processes the benchmark starts on loopback (this run: %s). One operation is Acquire + Release for a lock, one `TryTake(1)` for a bucket; time/op is wall time per operation of all goroutines together, latency is one operation as its goroutine saw it, and round trips are counted by a hook on the client, not assumed. The harness checks these implementations with the same `RunLock`, `RunSemaphore` and `RunBucket` as the in-process ones (`harness/remote_test.go`), and `impls/redis` injects the faults: stalled holders, crashes, a paused and a killed server, Redlock with servers down.\n\n", status)
	for _, g := range append(locks, buckets...) {
		what := map[string]string{"RedisLock": "Redis locks: Acquire + Release", "RedisBucket": "Redis token buckets: TryTake(1)"}[g.Family]
		impls := r.d.Impls(g)
		gcs := r.d.GoroutineCounts(g)
		procs := r.d.Procs()
		p := procs[len(procs)-1]
		for _, q := range procs {
			if q == r.mainP {
				p = q
			}
		}
		var c *chart
		var err error
		var title, base string
		if g.Family == "RedisLock" {
			// What a lock user reads is how long one waits: percentiles,
			// at the most contended goroutine count, on a log scale.
			top := gcs[len(gcs)-1]
			title = fmt.Sprintf("%s: latency percentiles, %s goroutines", what, top)
			base = "redislock-latency"
			c, err = r.percentileChart(g, top, p, title, "Acquire + Release")
		} else {
			title = fmt.Sprintf("%s: time per operation by goroutines", what)
			base = "redisbucket-by-goroutines"
			c, err = r.goroutineBars(g, p, title)
		}
		if err != nil {
			return err
		}
		r.printf("### %s\n\n", what)
		if err := r.embed(c, base, title); err != nil {
			return err
		}
		r.printf("| impl | goroutines | time/op | 95%% CI | latency p50 | p99 | p99.9 | round trips/op |\n|---|---|---|---|---|---|---|---|\n")
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
				r.printf("| `%s` | %s | %s | %s | %s | %s | %s | %s |\n", impl, gs, fmtTime(cell.Summary.Center), ciString(cell),
					get("p50-sec", fmtTime), get("p99-sec", fmtTime), get("p999-sec", fmtTime), get("roundtrips/op", sig3))
			}
		}
		r.printf("\n")
	}
	return nil
}

// faultOutcome is one line of faults.jsonl (harness.FaultOutcome).
type faultOutcome struct {
	Scenario string `json:"scenario"`
	Impl     string `json:"impl"`
	Survived bool   `json:"survived"`
	Expected bool   `json:"expected"`
	Evidence string `json:"evidence"`
}

// faultTable writes the fault table from faults.jsonl beside the raw
// results, if there is one: scenario by implementation, survived or failed,
// with the measured evidence.
func (r *report) faultTable() error {
	dir := r.rawDir
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, "faults.jsonl")
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		r.printf("No fault table in this run (`%s` is missing; bench.sh writes it when redis-server is installed).\n\n", filepath.ToSlash(path))
		return nil
	}
	if err != nil {
		return err
	}
	var outcomes []faultOutcome
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var o faultOutcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			return fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		outcomes = append(outcomes, o)
	}
	var scenarios, impls []string
	cell := map[[2]string]faultOutcome{}
	for _, o := range outcomes {
		if !contains(scenarios, o.Scenario) {
			scenarios = append(scenarios, o.Scenario)
		}
		if !contains(impls, o.Impl) {
			impls = append(impls, o.Impl)
		}
		cell[[2]string{o.Scenario, o.Impl}] = o
	}
	r.printf("### Faults: what each design survives\n\n")
	r.printf("From `harness.TestRemoteFaults`, run by `make bench` on servers it starts, kills, pauses (SIGSTOP) and restarts. Each cell is measured; the test asserts it against what the design promises, so *expected* failures of the controls are checked too.\n\n")
	r.printf("| scenario |")
	for _, impl := range impls {
		r.printf(" `%s` |", impl)
	}
	r.printf("\n|---|%s\n", strings.Repeat("---|", len(impls)))
	for _, sc := range scenarios {
		r.printf("| %s |", mdEscape(sc))
		for _, impl := range impls {
			o, ok := cell[[2]string{sc, impl}]
			switch {
			case !ok:
				r.printf(" – |")
			case o.Survived:
				r.printf(" survived |")
			case !o.Expected:
				r.printf(" **failed** (as expected) |")
			default:
				r.printf(" **FAILED, unexpectedly** |")
			}
		}
		r.printf("\n")
	}
	r.printf("\nThe evidence for every cell is in [details.md](details.md#fault-evidence).\n\n")
	r.toDetails(func() {
		r.printf("## Fault evidence\n\nWhat `harness.TestRemoteFaults` measured in each scenario of REPORT.md's fault table.\n\n")
		for _, o := range outcomes {
			r.printf("- %s, `%s`: %s\n", o.Scenario, o.Impl, mdEscape(o.Evidence))
		}
		r.printf("\n")
	})
	return nil
}
