package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// report accumulates REPORT.md and the charts it links to.
type report struct {
	d        *Data
	rawDir   string
	chartDir string // where charts are written
	chartRel string // chartDir relative to REPORT.md
	cores    int    // the machine's cores, from the raw file's configuration
	mainP    int    // the GOMAXPROCS the main tables are shown at
	b        strings.Builder
	charts   []string
	reg      registryIndex
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

// section is one part of REPORT.md: it reads its cells, writes its text,
// tables and charts together.
type section struct {
	name  string
	write func(r *report) error
}

// sections lists REPORT.md's sections once, in order.
func sections() []section {
	s := []section{
		{"machine", func(r *report) error { r.header(); return nil }},
		{"what to use", (*report).whatToUse},
		{"how to read", func(r *report) error { r.howToRead(); return nil }},
		{"verdict", (*report).verdict},
		{"strategies", func(r *report) error { r.strategies(); return nil }},
		{"what goes wrong", (*report).whatGoesWrong},
	}
	for _, f := range familySpecs() {
		s = append(s, section{f.bench, func(r *report) error { return r.family(f) }})
	}
	return append(s,
		section{"redis", (*report).redisTier},
		section{"floors", func(r *report) error { r.floors(); return nil }},
		section{"appendix", func(r *report) error { r.appendix(); return nil }},
	)
}

func newReport(d *Data, rawDir, outDir string) *report {
	r := &report{d: d, rawDir: rawDir, chartDir: filepath.Join(outDir, "charts"), chartRel: "charts", reg: newRegistryIndex()}
	r.cores, _ = strconv.Atoi(d.ConfigValue("cores"))
	procs := d.Procs()
	r.mainP = procs[len(procs)-1]
	for _, p := range procs {
		if p == r.cores {
			r.mainP = p
		}
	}
	return r
}

// write renders everything: REPORT.md into outDir, charts into outDir/charts.
func (r *report) write(outDir string) error {
	if err := os.MkdirAll(r.chartDir, 0o755); err != nil {
		return err
	}
	for _, s := range sections() {
		if err := s.write(r); err != nil {
			return fmt.Errorf("section %s: %w", s.name, err)
		}
	}
	return os.WriteFile(filepath.Join(outDir, "REPORT.md"), []byte(r.b.String()), 0o644)
}

// id builds a cellID in group g.
func (r *report) id(g groupID, impl, goroutines string, procs int, unit string) cellID {
	return cellID{Family: g.Family, Workload: g.Workload, Clock: g.Clock, Check: g.Check, Impl: impl, Goroutines: goroutines, Procs: procs, Unit: unit}
}

func (r *report) chartName(g groupID, kind string) string {
	parts := []string{strings.ToLower(g.Family)}
	for _, s := range []string{g.Workload, g.Clock, g.Check} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(append(parts, kind), "-")
}

// embed saves c under base and links it from the report.
func (r *report) embed(c *chart, base, alt string) error {
	if err := c.save(r.chartDir, base); err != nil {
		return fmt.Errorf("chart %s: %w", base, err)
	}
	r.charts = append(r.charts, base)
	r.printf("![%s](%s/%s.svg)\n\n", alt, r.chartRel, base)
	return nil
}
