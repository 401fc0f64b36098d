// Package catalog describes the lab's implementations as data: for each,
// its family, name, backend, guarantee and what goes wrong with it. The
// registry (package harness) builds the catalog from its entries;
// `make bench` writes it beside the raw results (File), and the report
// (cmd/report) reads it from there, so the report links no implementation,
// no server client and no testing code, and describes exactly the
// implementations the run measured.
package catalog

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// File is the catalog's file name in a raw results directory.
const File = "catalog.json"

// Guarantee is what an implementation promises, and so what the harness
// holds it to.
type Guarantee int

const (
	// Exact: linearizable. A counter never loses an update. A bucket makes
	// the textbook token bucket's decisions (package textbook), in the order
	// they take effect, within refill.Tolerance: over any window W it grants
	// at most Capacity + Rate × W. A lock never has two live leases and its
	// fencing tokens strictly increase; a semaphore never has more than
	// Capacity permits out.
	Exact Guarantee = iota
	// Approximate: never loses an update, and a bucket never grants more than
	// Capacity + Rate × elapsed since construction; but over a window a bucket
	// may grant up to its stated excess more and under-grant by up to its
	// stated bound, and a counter's Load may not be linearizable.
	Approximate
	// Racy: no synchronisation. The race detector flags it, and the harness
	// asserts that it fails under concurrency.
	Racy
	// Broken: free of data races, but wrong by design (an anti-pattern kept
	// to show what goes wrong). The harness asserts the failure named in
	// its Flaw.
	Broken
)

var guaranteeNames = [...]string{Exact: "exact", Approximate: "approximate", Racy: "racy", Broken: "broken"}

// String returns the guarantee's name as README and the report print it.
func (g Guarantee) String() string {
	if g >= 0 && int(g) < len(guaranteeNames) {
		return guaranteeNames[g]
	}
	return "unknown"
}

// Correct reports whether the harness holds implementations with this
// guarantee to the family's invariants (Exact and Approximate).
func (g Guarantee) Correct() bool { return g == Exact || g == Approximate }

// MarshalText encodes the guarantee as its name.
func (g Guarantee) MarshalText() ([]byte, error) {
	if g.String() == "unknown" {
		return nil, fmt.Errorf("catalog: unknown guarantee %d", int(g))
	}
	return []byte(g.String()), nil
}

// UnmarshalText decodes a guarantee's name.
func (g *Guarantee) UnmarshalText(b []byte) error {
	i := slices.Index(guaranteeNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("catalog: unknown guarantee %q", b)
	}
	*g = Guarantee(i)
	return nil
}

// The families.
const (
	Counter   = "counter"
	Bucket    = "bucket"
	Lock      = "lock"
	Semaphore = "semaphore"
	Keyed     = "keyed"
)

// Entry is one registered implementation.
type Entry struct {
	Family string `json:"family"`
	// Name is the implementation's name in benchmarks, charts and tables:
	// lower case, no trailing -digits. Unique within its family and backend.
	Name string `json:"name"`
	// Backend is the remote backend it runs on ("redis", "zookeeper",
	// "etcd"), or "" in process.
	Backend string `json:"backend,omitempty"`
	// Deployments are the backend's deployments it runs on, its main one
	// first.
	Deployments []string  `json:"deployments,omitempty"`
	Guarantee   Guarantee `json:"guarantee"`
	// Reference: a library users would otherwise pick, run as the bar to
	// beat and held to the same checks.
	Reference bool   `json:"reference,omitempty"`
	Summary   string `json:"summary"`
	// Flaw says what goes wrong, for a Racy or Broken implementation.
	Flaw string `json:"flaw,omitempty"`
	// Deviations lists, for a reference, the checks it fails by design, by
	// check name, with what it does instead.
	Deviations map[string]string `json:"deviations,omitempty"`
	// NoFencing: a lock or semaphore whose leases carry no fencing token.
	NoFencing bool `json:"noFencing,omitempty"`
	// Fair: waiters are served in arrival order.
	Fair bool `json:"fair,omitempty"`
	// HandOff, for a lock that keeps only the weaker TryAcquire rule of
	// contend.Lock (ErrHeld while nobody holds it: a hand-off to a waiter
	// that has left, or a quorum's split votes), says how.
	HandOff string `json:"handOff,omitempty"`
}

// Keys of Entry.Deviations with a meaning beyond their text.
const (
	// StressDeviation declares that a reference breaks the stress
	// invariants under concurrency (over- or under-grants).
	StressDeviation = "stress"
	// TextbookDeviation declares that a reference's sequential decisions
	// differ from the textbook token bucket's beyond refill.Tolerance.
	TextbookDeviation = "textbook"
)

// Deployment is one shape of a backend's servers (remote.Deployment).
type Deployment struct {
	Name     string `json:"name"`
	Topology string `json:"topology"`
	Servers  int    `json:"servers"`
}

// Backend is one remote backend (remote.Backend), as data.
type Backend struct {
	Name        string       `json:"name"`
	Server      string       `json:"server"`
	Install     string       `json:"install"`
	Deployments []Deployment `json:"deployments"`
}

// Catalog is every registered implementation and backend.
type Catalog struct {
	Entries  []Entry   `json:"entries"`
	Backends []Backend `json:"backends"`
}

// Lookup returns the entry of family and backend named name.
func (c Catalog) Lookup(family, backend, name string) (Entry, bool) {
	for _, e := range c.Entries {
		if e.Family == family && e.Backend == backend && e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Family returns the entries of family on backend ("" in process), in
// registry order.
func (c Catalog) Family(family, backend string) []Entry {
	var out []Entry
	for _, e := range c.Entries {
		if e.Family == family && e.Backend == backend {
			out = append(out, e)
		}
	}
	return out
}

// Backend returns the backend named name.
func (c Catalog) Backend(name string) (Backend, bool) {
	for _, b := range c.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// Write writes c as indented JSON.
func (c Catalog) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// Read reads a catalog written by Write from path.
func Read(path string) (Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Catalog{}, err
	}
	var c Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		return Catalog{}, fmt.Errorf("catalog: %s: %w", path, err)
	}
	return c, nil
}
