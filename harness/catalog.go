package harness

import (
	"github.com/contend-lab/contend/catalog"
)

// Catalog returns the registry as data: every registered implementation,
// in process and remote, in the order the report lists them, and every
// backend. `make bench` writes it beside the raw results for the report
// (cmd/catalog prints it).
func Catalog() catalog.Catalog {
	var c catalog.Catalog
	add := func(e catalog.Entry) { c.Entries = append(c.Entries, e) }
	for _, i := range Counters() {
		add(catalog.Entry{Family: catalog.Counter, Name: i.Name, Guarantee: i.Guarantee, Reference: i.Reference, Summary: i.Summary, Flaw: i.Flaw})
	}
	for _, i := range Buckets() {
		add(catalog.Entry{Family: catalog.Bucket, Name: i.Name, Guarantee: i.Guarantee, Reference: i.Reference, Summary: i.Summary, Flaw: i.Flaw, Deviations: i.Deviations})
	}
	for _, i := range Locks() {
		add(catalog.Entry{Family: catalog.Lock, Name: i.Name, Guarantee: i.Guarantee, Reference: i.Reference, Summary: i.Summary, Flaw: i.Flaw, Fair: i.Fair, HandOff: i.Deviation})
	}
	for _, i := range Semaphores() {
		add(catalog.Entry{Family: catalog.Semaphore, Name: i.Name, Guarantee: i.Guarantee, Reference: i.Reference, Summary: i.Summary, Flaw: i.Flaw, NoFencing: i.NoFencing})
	}
	remoteEntry := func(family string, r RemoteImpl) catalog.Entry {
		return catalog.Entry{Family: family, Name: r.Name, Backend: r.Backend, Deployments: r.Deployments,
			Guarantee: r.Guarantee, Reference: r.Reference, Summary: r.Summary, Flaw: r.Flaw, Deviations: r.Deviations}
	}
	for _, i := range RemoteLocks() {
		e := remoteEntry(catalog.Lock, i.RemoteImpl)
		e.NoFencing, e.HandOff = i.NoFencing, i.WeakTryAcquire
		add(e)
	}
	for _, i := range RemoteSemaphores() {
		e := remoteEntry(catalog.Semaphore, i.RemoteImpl)
		e.NoFencing = i.NoFencing
		add(e)
	}
	for _, i := range RemoteBuckets() {
		add(remoteEntry(catalog.Bucket, i.RemoteImpl))
	}
	for _, b := range Backends() {
		cb := catalog.Backend{Name: b.Name, Server: b.Server, Install: b.Install}
		for _, d := range b.Deployments {
			cb.Deployments = append(cb.Deployments, catalog.Deployment{Name: d.Name, Topology: d.Topology.String(), Servers: d.Servers})
		}
		c.Backends = append(c.Backends, cb)
	}
	return c
}
