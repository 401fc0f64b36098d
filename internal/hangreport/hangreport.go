// Package hangreport says which of the module's own code a test binary is
// stuck in, shortly before go test's -timeout would panic.
//
// go test's own timeout report lists every goroutine, the test's and every
// client library's, in an order of its own; a log that keeps only the end
// of the output (CI's does) keeps a few goroutines of some library, not the
// test that hung. Arm's report prints the full dump too, and then, last, a
// summary of at most maxSummary lines: the goroutines that run this module's
// code, identical stacks merged, each shown by where it waits and by its
// frames in this module, the tests' own goroutines at the very end. Then
// the binary exits with status 2, which go test reports as a failure.
package hangreport

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// module is the import path prefix whose frames the summary shows.
const module = "github.com/contend-lab/contend/"

// maxSummary bounds the summary, so that it fits in the end of a log.
const maxSummary = 50

// runMargin is how long before -test.timeout Run's report comes.
const runMargin = time.Minute

// Run is m.Run with a report runMargin before -test.timeout: a package's
// TestMain is os.Exit(hangreport.Run(m)), after its own clean-ups if it has
// any.
func Run(m *testing.M) int {
	flag.Parse()
	stop := Arm(runMargin)
	defer stop()
	return m.Run()
}

// Arm reports and exits margin before -test.timeout would end the binary.
// Call it from TestMain after flag.Parse; it does nothing without a
// timeout, or with one shorter than twice margin. stop disarms it.
func Arm(margin time.Duration) (stop func()) {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return func() {}
	}
	timeout, err := time.ParseDuration(f.Value.String())
	if err != nil || timeout < 2*margin {
		return func() {}
	}
	t := time.AfterFunc(timeout-margin, func() {
		dump := allStacks()
		fmt.Fprintf(os.Stderr, "\nhangreport: still running %v before -test.timeout %v; every goroutine:\n\n%s\n", margin, timeout, dump)
		Summarize(os.Stderr, dump, maxSummary)
		os.Exit(2)
	})
	return func() { t.Stop() }
}

// allStacks returns runtime.Stack of every goroutine, however long.
func allStacks() string {
	for n := 1 << 20; ; n *= 2 {
		buf := make([]byte, n)
		if k := runtime.Stack(buf, true); k < n {
			return string(buf[:k])
		}
	}
}

// group is the goroutines that share one summarized stack.
type group struct {
	state string   // "chan receive, 22 minutes"
	lines []string // where it waits, then the module's frames, innermost first
	count int
	test  bool // it runs a test (a testing.tRunner frame)
}

// Summarize writes to w the summary of dump (runtime.Stack's format, all
// goroutines) in at most maxLines lines; see the package doc.
func Summarize(w io.Writer, dump string, maxLines int) {
	var groups []*group
	byKey := map[string]*group{}
	for _, g := range parse(dump) {
		key := g.state + "\n" + strings.Join(g.lines, "\n")
		if old, ok := byKey[key]; ok {
			old.count++
			continue
		}
		byKey[key] = g
		groups = append(groups, g)
	}
	// Tests last, so that the end of a log shows them; then the largest
	// groups nearest the end.
	slices.SortStableFunc(groups, func(a, b *group) int {
		switch {
		case a.test != b.test:
			if a.test {
				return 1
			}
			return -1
		default:
			return a.count - b.count
		}
	})
	var out []string
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		block := append([]string{fmt.Sprintf("%d× [%s]", g.count, g.state)}, g.lines...)
		if len(out)+len(block) > maxLines-1 {
			out = append([]string{fmt.Sprintf("(%d more groups left out)", i+1)}, out...)
			break
		}
		out = append(block, out...)
	}
	fmt.Fprintf(w, "hangreport: goroutines in %s code, tests last:\n%s\n", strings.TrimSuffix(module, "/"), strings.Join(out, "\n"))
}

// parse returns the goroutines of dump that run the module's code, each
// as a group of one.
func parse(dump string) []*group {
	var gs []*group
	for _, block := range strings.Split(dump, "\n\n") {
		sc := bufio.NewScanner(strings.NewReader(block))
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		if !sc.Scan() {
			continue
		}
		header := sc.Text() // goroutine 12 [chan receive, 22 minutes]:
		open, end := strings.IndexByte(header, '['), strings.LastIndexByte(header, ']')
		if !strings.HasPrefix(header, "goroutine ") || open < 0 || end < open {
			continue
		}
		g := &group{state: header[open+1 : end], count: 1}
		var frames []string // "function  file:line", innermost first
		for sc.Scan() {
			fn := sc.Text()
			if !sc.Scan() {
				break
			}
			loc := strings.TrimSpace(sc.Text())
			if i := strings.LastIndex(loc, " +0x"); i >= 0 {
				loc = loc[:i]
			}
			if i := strings.Index(fn, " in goroutine "); i >= 0 {
				fn = fn[:i] // "created by f in goroutine 12": the number differs
			} else if i := strings.LastIndexByte(fn, '('); i > 0 && !strings.HasPrefix(fn, "created by ") {
				fn = fn[:i] // the arguments differ
			}
			g.test = g.test || strings.HasPrefix(fn, "testing.tRunner")
			frames = append(frames, fn+"  "+base(loc))
		}
		ours := func(f string) bool { return strings.Contains(f, module) }
		if !slices.ContainsFunc(frames, ours) || slices.ContainsFunc(frames, func(f string) bool {
			return strings.Contains(f, module+"internal/hangreport.Arm") // the report itself
		}) {
			continue
		}
		for i, f := range frames {
			if i == 0 || ours(f) { // where it waits, then the module's frames
				g.lines = append(g.lines, "    "+strings.ReplaceAll(f, module, ""))
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// base keeps a file's name and line: "/root/x/zkref.go:133" is "zkref.go:133".
func base(loc string) string {
	if i := strings.LastIndexByte(loc, '/'); i >= 0 {
		return loc[i+1:]
	}
	return loc
}
