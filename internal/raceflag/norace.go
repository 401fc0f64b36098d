//go:build !race

// Package raceflag reports whether the race detector is compiled in, so
// that tests can keep deliberately racy code out of a -race binary (where
// the detector would fail the whole test run) and skip allocation counts
// (the detector allocates).
package raceflag

// Enabled reports whether the binary was built with -race.
const Enabled = false
