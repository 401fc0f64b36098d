package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// fmtTime formats seconds with 3 significant digits and a unit.
func fmtTime(sec float64) string {
	switch a := math.Abs(sec); {
	case a == 0:
		return "0"
	case a < 1e-6:
		return sig3(sec*1e9) + " ns"
	case a < 1e-3:
		return sig3(sec*1e6) + " µs"
	case a < 1:
		return sig3(sec*1e3) + " ms"
	}
	return sig3(sec) + " s"
}

// sig3 formats v with 3 significant digits, without exponent for ordinary
// magnitudes.
func sig3(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	mag := int(math.Floor(math.Log10(math.Abs(v))))
	if mag >= 6 || mag < -4 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	decimals := max(0, 2-mag)
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func relPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = filepath.ToSlash(p)
	}
	return out
}

// fmtCount formats a count with 3 significant digits and k/M/G.
func fmtCount(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return sig3(v/1e9) + " G"
	case a >= 1e6:
		return sig3(v/1e6) + " M"
	case a >= 1e3:
		return sig3(v/1e3) + " k"
	}
	return sig3(v)
}

func ciString(c *Cell) string {
	if !c.HasCI {
		return fmt.Sprintf("n/a (n=%d < 6)", len(c.Values))
	}
	if c.ID.Unit == "sec/op" {
		return fmt.Sprintf("%s – %s (±%s)", fmtTime(c.Summary.Lo), fmtTime(c.Summary.Hi), c.Summary.PctRangeString())
	}
	return fmt.Sprintf("%s – %s (±%s)", sig3(c.Summary.Lo), sig3(c.Summary.Hi), c.Summary.PctRangeString())
}
