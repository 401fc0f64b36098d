package main

// floors writes the floor benchmarks: what nothing can beat.
func (r *report) floors() {
	groups := r.d.Groups("Floor")
	if len(groups) == 0 {
		return
	}
	r.printf("## Floors\n\n")
	r.printf("What frames the numbers above, on one goroutine: a goroutine-local increment (the physical floor of a counter), one uncontended atomic add, and the cost of reading each clock (every bucket call reads one).\n\n")
	r.printf("| floor | impl | time/op | 95%% CI |\n|---|---|---|---|\n")
	for _, g := range groups {
		for _, impl := range r.d.Impls(g) {
			c := r.d.Cell(r.id(g, impl, "1", r.mainP, "sec/op"))
			if c == nil {
				continue
			}
			r.printf("| %s | `%s` | %s | %s |\n", g.Workload, impl, fmtTime(c.Summary.Center), ciString(c))
		}
	}
	r.printf("\n")
}

// appendix writes details.md: every group's table at every GOMAXPROCS.
func (r *report) appendix() {
	r.toDetails(func() {
		r.printf("## Every GOMAXPROCS\n\nEach group at each GOMAXPROCS, every goroutine count, against its baseline.\n\n")
		for _, f := range familySpecs() {
			for _, g := range r.d.Groups(f.bench) {
				for _, p := range r.d.Procs() {
					r.printf("### %s, GOMAXPROCS %d\n\n", describeGroup(g), p)
					r.table(g, p)
				}
			}
		}
	})
}
