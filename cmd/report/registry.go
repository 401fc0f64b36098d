package main

import (
	"sort"

	"github.com/contend-lab/contend/harness"
	"github.com/contend-lab/contend/keyed"
)

// implInfo is what the registry (package harness) says about an
// implementation. The report reads guarantees, references and deviations
// from here, never from benchmark names.
type implInfo struct {
	Family    string // registry family: "counter", "bucket", "lock" or "semaphore"
	Name      string
	Guarantee harness.Guarantee
	Reference bool
	Summary   string
	Flaw      string
	Deviates  map[string]string
	// NoFencing: a remote lock that hands out no fencing token.
	NoFencing bool
}

// Correct reports whether the harness holds the implementation to its
// family's invariants.
func (i implInfo) Correct() bool { return i.Guarantee.Correct() }

// registry lists the registered implementations: counters, buckets, locks,
// then semaphores.
func registry() []implInfo {
	var out []implInfo
	for _, c := range harness.Counters() {
		out = append(out, implInfo{"counter", c.Name, c.Guarantee, c.Reference, c.Summary, c.Flaw, nil, false})
	}
	for _, b := range harness.Buckets() {
		out = append(out, implInfo{"bucket", b.Name, b.Guarantee, b.Reference, b.Summary, b.Flaw, b.Deviations, false})
	}
	for _, l := range harness.Locks() {
		out = append(out, implInfo{"lock", l.Name, l.Guarantee, l.Reference, l.Summary, l.Flaw, nil, false})
	}
	for _, s := range harness.Semaphores() {
		out = append(out, implInfo{"semaphore", s.Name, s.Guarantee, s.Reference, s.Summary, s.Flaw, nil, false})
	}
	return out
}

// remoteRegistry lists the registered server-backed implementations.
func remoteRegistry() []implInfo {
	var out []implInfo
	for _, l := range harness.RemoteLocks() {
		out = append(out, implInfo{"redis lock", l.Name, l.Guarantee, l.Reference, l.Summary, l.Flaw, nil, l.NoFencing})
	}
	for _, s := range harness.RemoteSemaphores() {
		out = append(out, implInfo{"redis semaphore", s.Name, s.Guarantee, s.Reference, s.Summary, s.Flaw, nil, false})
	}
	for _, b := range harness.RemoteBuckets() {
		out = append(out, implInfo{"redis bucket", b.Name, b.Guarantee, b.Reference, b.Summary, b.Flaw, nil, false})
	}
	return out
}

// registryIndex is registry() by family and name.
type registryIndex map[[2]string]implInfo

func newRegistryIndex() registryIndex {
	idx := registryIndex{}
	for _, i := range append(registry(), remoteRegistry()...) {
		idx[[2]string{i.Family, i.Name}] = i
	}
	// keyed.Impls carries no guarantee; its package doc gives all three
	// one: each key's bucket is exactly an cas.Bucket.
	for _, k := range keyed.Impls() {
		idx[[2]string{"keyed", k.Name}] = implInfo{Family: "keyed", Name: k.Name, Guarantee: harness.Exact, Summary: benchOnly[k.Name]}
	}
	// impls/redis's benchmarks name redis-naive "naive" (they cannot
	// import the harness's registry, which imports them).
	idx[[2]string{"redis lock", "naive"}] = idx[[2]string{"redis lock", "redis-naive"}]
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

// benchOnly defines the names that benchmarks use and the registry does
// not list, so that every name in a chart or table is defined.
var benchOnly = map[string]string{
	"padded-slots": "one padded slot per goroutine, which no real counter can be (each goroutine owns its slot; Load sums them): the floor of a striped counter",
	"xrate-allow":  "golang.org/x/time/rate as most code calls it, Limiter.AllowN(time.Now(), n), so real clock only; the registry's `xrate` is the same Limiter on the injected clock",
	"xsync-mapof":  "one exact bucket per key in github.com/puzpuzpuz/xsync/v3 MapOf",
	"sync-map":     "one exact bucket per key in a sync.Map",
	"mutex-map":    "one exact bucket per key in a map behind a sync.RWMutex",
}

// implOrder is the order implementations appear in tables, legends and
// colour assignment: the registry's, then the benchmark-only variants.
func implOrder() []string {
	var order []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			order = append(order, n)
		}
	}
	for _, r := range registry() {
		add(r.Name)
	}
	add("padded-slots")
	add("xrate-allow")
	for _, k := range keyed.Impls() {
		add(k.Name)
	}
	return order
}

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
