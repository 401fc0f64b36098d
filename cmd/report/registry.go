package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/contend-lab/contend/catalog"
)

// implInfo is what the registry says about an implementation, read from
// the catalog the run wrote beside its raw results (package catalog). The
// report reads guarantees, references and deviations from here, never
// from benchmark names.
type implInfo struct {
	Family    string // report family: "counter", "bucket", "lock", "semaphore", "keyed", or "<backend> lock" etc.
	Name      string
	Guarantee catalog.Guarantee
	Reference bool
	Summary   string
	Flaw      string
	Deviates  map[string]string
	NoFencing bool // a lock that hands out no fencing token
}

// Correct reports whether the harness holds the implementation to its
// family's invariants.
func (i implInfo) Correct() bool { return i.Guarantee.Correct() }

// reportFamily is the report's family of a catalog entry: its family, with
// its backend in front for a remote one ("redis lock").
func reportFamily(e catalog.Entry) string {
	if e.Backend == "" {
		return e.Family
	}
	return e.Backend + " " + e.Family
}

// readCatalog reads the catalog beside the raw results in dir (or beside
// the raw file dir names).
func readCatalog(dir string) (catalog.Catalog, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, catalog.File)
	c, err := catalog.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%s is missing: make bench writes it (go run ./cmd/catalog > %s)", path, path)
	}
	return c, err
}

// registryIndex is the catalog by report family and name.
type registryIndex map[[2]string]implInfo

func newRegistryIndex(c catalog.Catalog) registryIndex {
	idx := registryIndex{}
	for _, e := range c.Entries {
		f := reportFamily(e)
		idx[[2]string{f, e.Name}] = implInfo{f, e.Name, e.Guarantee, e.Reference, e.Summary, e.Flaw, e.Deviations, e.NoFencing}
	}
	// Keyed limiters are not in the catalog yet: each key's bucket is an
	// exact cas.Bucket (package keyed).
	for _, k := range keyedNames {
		if k == "go-limiter" || k == "xrate-syncmap" {
			continue // references measured only: benchmark-only names
		}
		if _, ok := idx[[2]string{"keyed", k}]; !ok {
			idx[[2]string{"keyed", k}] = implInfo{Family: "keyed", Name: k, Guarantee: catalog.Exact, Summary: benchOnly[k]}
		}
	}
	return idx
}

// lookup returns the registry's entry for name in family.
func (idx registryIndex) lookup(family, name string) (implInfo, bool) {
	i, ok := idx[[2]string{family, name}]
	return i, ok
}

// correct reports whether name is registered in family and held to its
// invariants.
func (idx registryIndex) correct(family, name string) bool {
	i, ok := idx.lookup(family, name)
	return ok && i.Correct()
}

// keyedNames are the keyed limiters the keyed benchmark measures.
var keyedNames = []string{"xsync-mapof", "xsync-mapof-mutex", "xsync-mapof-eager", "go-limiter", "xrate-syncmap", "sync-map", "mutex-map"}

// benchOnly defines the names that benchmarks use and the registry does
// not list, so that every name in a chart or table is defined.
var benchOnly = map[string]string{
	"padded-slots":      "one padded slot per goroutine, which no real counter can be (each goroutine owns its slot; Load sums them): the floor of a striped counter",
	"xrate-allow":       "golang.org/x/time/rate as most code calls it, Limiter.AllowN(time.Now(), n), so real clock only; the registry's `xrate` is the same Limiter on the injected clock",
	timerFloor:          "a TryTake that returns at once, timed as the buckets are in BenchmarkBucketLatency: what the timer alone reads",
	"xsync-mapof":       "the lab's keyed.Limiter: one exact 16-byte bucket per key (CAS) in github.com/puzpuzpuz/xsync/v3 MapOf, idle keys evicted once their bucket is full again (which changes no decision)",
	"xsync-mapof-mutex": "keyed.Limiter with keyed.WithStrategy(keyed.Mutex): each key's bucket behind its own small lock instead of a CAS",
	"xsync-mapof-eager": "keyed.Limiter with keyed.WithIdle(0): a bucket is forgotten as soon as it is full, so cold keys are made again and again",
	"go-limiter":        "github.com/sethvargo/go-limiter memorystore with its defaults: string keys, a mutex per bucket, refills whole intervals on the wall clock",
	"xrate-syncmap":     "golang.org/x/time/rate Limiters in a sync.Map, created on first use and never forgotten",
	"sync-map":          "baseline: one exact bucket per key in a sync.Map, never forgotten",
	"mutex-map":         "baseline: one exact bucket per key in a map behind one sync.Mutex, never forgotten",
	"xrate-wait":        "golang.org/x/time/rate Limiter.Wait",
	"uber-take":         "go.uber.org/ratelimit Limiter.Take: a blocking pacer, which cannot be cancelled",
}

// implOrderList is the order implementations appear in tables, legends and
// colour assignment: the catalog's in-process entries, the benchmark-only
// variants, then the remote entries (remoteOrderList), which never share a
// chart with the others. Load sets both from the run's catalog.
var implOrderList, remoteOrderList []string

// localColoured are the names whose colours are assigned in order among
// themselves: in-process charts show them together; keyed limiters and
// remote implementations have charts of their own.
var localColoured []string

// setImplOrder computes implOrderList and remoteOrderList from c.
func setImplOrder(c catalog.Catalog) {
	var local, remote []string
	seen := map[string]bool{}
	add := func(list *[]string, n string) {
		if !seen[n] {
			seen[n] = true
			*list = append(*list, n)
		}
	}
	for _, e := range c.Entries {
		if e.Backend == "" {
			add(&local, e.Name)
		}
	}
	add(&local, "padded-slots")
	add(&local, "xrate-allow")
	add(&local, "xrate-wait")
	add(&local, "uber-take")
	add(&local, timerFloor)
	keyedFrom := len(local)
	for _, k := range keyedNames {
		add(&local, k)
	}
	for _, e := range c.Entries {
		if e.Backend != "" {
			add(&remote, e.Name)
		}
	}
	implOrderList, remoteOrderList, localColoured = append(local, remote...), remote, local[:keyedFrom]
}

// implOrder returns the order implementations appear in.
func implOrder() []string { return implOrderList }

// sortImpls sorts names into implOrder, unknown names last, alphabetically.
func sortImpls(names []string) {
	order := implOrder()
	r := func(n string) int { return rank(order, n) }
	sort.Slice(names, func(i, j int) bool {
		if ri, rj := r(names[i]), r(names[j]); ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
}
