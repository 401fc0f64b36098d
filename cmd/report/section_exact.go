package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// exactRow is one line of textbook.jsonl: what harness's
// TestDifferentialAgainstTextbook measured for one bucket on one case.
type exactRow struct {
	Impl, Guarantee, Case string
	Decisions             int
	OverGrants            int
	WrongDenials          int
	Tolerated             int
	WindowExcess          float64
	FirstWrong            string
}

// staleRow is one line of stale.jsonl: TestStaleReadingsNeverOverGrant's
// worst window for one bucket.
type staleRow struct {
	Impl, Guarantee string
	Runs            int
	WorstExcess     float64
	Allowed         float64
}

// readJSONLines reads name in the raw directory into rows; a missing file
// is no rows (an older run), a malformed line an error naming it.
func readJSONLines[T any](dir, name string) ([]T, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var row T
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", filepath.Join(dir, name), line, err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// exactness writes the section built from textbook.jsonl and stale.jsonl:
// every bucket held to the textbook token bucket.
func (r *report) exactness() error {
	rows, err := readJSONLines[exactRow](r.rawDir, "textbook.jsonl")
	if err != nil {
		return err
	}
	stale, err := readJSONLines[staleRow](r.rawDir, "stale.jsonl")
	if err != nil {
		return err
	}
	r.printf("### Exactness: every bucket against the textbook bucket\n\n")
	if len(rows) == 0 {
		r.printf("No `textbook.jsonl` in the raw files: run `make bench`.\n\n")
		return nil
	}
	r.printf("An **exact** bucket makes the textbook token bucket's decisions (tokens = min(capacity, tokens + rate × dt), grant n iff tokens ≥ n), computed in exact rational arithmetic by package `textbook`, so over any window of length W it grants at most capacity + rate × W. "+
		"An **approximate** one (`pershard`) never exceeds capacity + rate × elapsed since it was made, but a window may go over by the S × B tokens its per-CPU caches hold. "+
		"`harness.TestDifferentialAgainstTextbook` replays %d configurations (capacity 1, tiny and huge rates, intervals that are and are not whole nanoseconds, requests of 1 and of capacity, idle gaps from 1 ns to decades), three random sequential histories each, through every bucket. "+
		"*Over-grants*: granted what the textbook bucket refused. *Wrong denials*: refused what it granted, beyond `refill.Tolerance` (a denial within 1 ns of the boundary, possible only when 1e9/rate is not whole nanoseconds: *tolerated*). *Worst window*: the most tokens any window of the history granted beyond capacity + rate × W (≤ 0 is correct). The textbook bucket follows each bucket's own decisions, so one disagreement does not make every later one a disagreement.\n\n", countCases(rows))
	type total struct {
		guarantee                              string
		decisions, over, wrong, tolerated, bad int
		worst                                  float64
		worstCase, firstWrong                  string
	}
	totals := map[string]*total{}
	var order []string
	for _, row := range rows {
		t := totals[row.Impl]
		if t == nil {
			t = &total{guarantee: row.Guarantee, worst: row.WindowExcess, worstCase: row.Case}
			totals[row.Impl] = t
			order = append(order, row.Impl)
		}
		t.decisions += row.Decisions
		t.over += row.OverGrants
		t.wrong += row.WrongDenials
		t.tolerated += row.Tolerated
		if row.OverGrants+row.WrongDenials > 0 {
			t.bad++
			if t.firstWrong == "" {
				t.firstWrong = row.FirstWrong
			}
		}
		if row.WindowExcess > t.worst {
			t.worst, t.worstCase = row.WindowExcess, row.Case
		}
	}
	r.printf("| bucket | guarantee | decisions | over-grants | wrong denials | tolerated | worst window (tokens over) | in |\n|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, impl := range order {
		t := totals[impl]
		r.printf("| `%s` | %s | %d | %d | %d | %d | %+.3g | %s |\n", impl, t.guarantee, t.decisions, t.over, t.wrong, t.tolerated, t.worst, t.worstCase)
	}
	r.printf("\n")
	for _, impl := range order {
		if t := totals[impl]; t.guarantee == "approximate" {
			r.printf("`%s` is approximate: its caches move tokens in time, so it disagrees with the textbook bucket by design; the test holds its windows to capacity + rate × W + S × B and its total to capacity + rate × elapsed, and both held.\n\n", impl)
		}
	}
	if t := totals["grid"]; t != nil {
		r.printf("`grid` is the lab's own exact bucket as it was before this check existed: tokens fell due on a grid fixed at construction, so a full bucket kept its partial token. It over-granted in %d of %d decisions here, and its worst window held %.3g tokens more than capacity + rate × W (on a limit of one per second it grants at 0 s, 1.5 s and 2.0 s). First: %s.\n\n", t.over, t.decisions, t.worst, t.firstWrong)
	}
	if len(stale) > 0 {
		r.printf("**Stale readings.** `harness.TestStaleReadingsNeverOverGrant`: 100 goroutines at GOMAXPROCS 8 on a clock whose every reading is returned after a yield (one in eight after a 30 µs sleep), while a driver advances it; capacity 50 at 100,000 tokens/s. A window counts only grants whose whole call lies inside it.\n\n")
		r.printf("| bucket | guarantee | runs | worst window (tokens over capacity + rate × W) | allowed |\n|---|---|---:|---:|---:|\n")
		for _, s := range stale {
			r.printf("| `%s` | %s | %d | %+.3g | %g |\n", s.Impl, s.Guarantee, s.Runs, s.WorstExcess, s.Allowed)
		}
		r.printf("\n")
		for _, s := range stale {
			if s.WorstExcess > s.Allowed {
				r.printf("`%s` over-granted a window by %.1f tokens: a caller's reading, taken before the limiter's mutex, can be older than the last caller's, and the limiter then counts the time between them twice (golang/go#56287). The lab's buckets read the clock after loading their state, so decisions take effect in reading order.\n\n", s.Impl, s.WorstExcess)
			}
		}
	}
	return nil
}

// countCases returns how many distinct cases rows cover.
func countCases(rows []exactRow) int {
	var names []string
	for _, row := range rows {
		if !slices.Contains(names, row.Case) {
			names = append(names, row.Case)
		}
	}
	return len(names)
}
