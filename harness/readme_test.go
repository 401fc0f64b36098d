package harness

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readmeRow is the README's strategy table row for one implementation.
func readmeRow(family, name string, g Guarantee, reference bool, summary, flaw string) string {
	ref := ""
	if reference {
		ref = "yes"
	}
	return fmt.Sprintf("| %s | `%s` | %s | %s | %s | %s |", family, name, g, ref, summary, flaw)
}

// TestReadmeListsEveryImplementation keeps README.md's strategy table in
// step with the registry: every implementation, with its guarantee.
func TestReadmeListsEveryImplementation(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(raw)
	for _, c := range Counters() {
		row := readmeRow("counter", c.Name, c.Guarantee, c.Reference, c.Summary, c.Flaw)
		assert.True(t, strings.Contains(readme, row), "README.md lacks the row\n%s", row)
	}
	for _, b := range Buckets() {
		row := readmeRow("bucket", b.Name, b.Guarantee, b.Reference, b.Summary, b.Flaw)
		assert.True(t, strings.Contains(readme, row), "README.md lacks the row\n%s", row)
	}
	for _, l := range Locks() {
		row := readmeRow("lock", l.Name, l.Guarantee, l.Reference, l.Summary, l.Flaw)
		assert.True(t, strings.Contains(readme, row), "README.md lacks the row\n%s", row)
	}
	for _, s := range Semaphores() {
		row := readmeRow("semaphore", s.Name, s.Guarantee, s.Reference, s.Summary, s.Flaw)
		assert.True(t, strings.Contains(readme, row), "README.md lacks the row\n%s", row)
	}
	for _, row := range remoteRows() {
		assert.True(t, strings.Contains(readme, row), "README.md lacks the row\n%s", row)
	}
}

// remoteRows are the README rows of the server-backed implementations.
func remoteRows() []string {
	var rows []string
	for _, l := range RemoteLocks() {
		rows = append(rows, readmeRow(l.Backend+" lock", l.Name, l.Guarantee, l.Reference, l.Summary, l.Flaw))
	}
	for _, s := range RemoteSemaphores() {
		rows = append(rows, readmeRow(s.Backend+" semaphore", s.Name, s.Guarantee, s.Reference, s.Summary, s.Flaw))
	}
	for _, b := range RemoteBuckets() {
		rows = append(rows, readmeRow(b.Backend+" bucket", b.Name, b.Guarantee, b.Reference, b.Summary, b.Flaw))
	}
	return rows
}

// TestReadmeTableRows prints the rows TestReadmeListsEveryImplementation
// expects, for pasting into README.md: go test -run TestReadmeTableRows -v ./harness
func TestReadmeTableRows(t *testing.T) {
	for _, c := range Counters() {
		t.Log(readmeRow("counter", c.Name, c.Guarantee, c.Reference, c.Summary, c.Flaw))
	}
	for _, b := range Buckets() {
		t.Log(readmeRow("bucket", b.Name, b.Guarantee, b.Reference, b.Summary, b.Flaw))
	}
	for _, l := range Locks() {
		t.Log(readmeRow("lock", l.Name, l.Guarantee, l.Reference, l.Summary, l.Flaw))
	}
	for _, s := range Semaphores() {
		t.Log(readmeRow("semaphore", s.Name, s.Guarantee, s.Reference, s.Summary, s.Flaw))
	}
	for _, row := range remoteRows() {
		t.Log(row)
	}
}
