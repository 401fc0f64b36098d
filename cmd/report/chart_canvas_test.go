package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
)

// affine is an SVG transform matrix: x' = a x + c y + e, y' = b x + d y + f.
type affine struct{ a, b, c, d, e, f float64 }

var identity = affine{a: 1, d: 1}

func (m affine) then(n affine) affine { // m · n: apply n, then m
	return affine{
		a: m.a*n.a + m.c*n.b, b: m.b*n.a + m.d*n.b,
		c: m.a*n.c + m.c*n.d, d: m.b*n.c + m.d*n.d,
		e: m.a*n.e + m.c*n.f + m.e, f: m.b*n.e + m.d*n.f + m.f,
	}
}

func (m affine) apply(x, y float64) (float64, float64) {
	return m.a*x + m.c*y + m.e, m.b*x + m.d*y + m.f
}

var transformOp = regexp.MustCompile(`(\w+)\(([^)]*)\)`)

// parseTransform reads the scale, translate and rotate operations vgsvg
// writes.
func parseTransform(t *testing.T, s string) affine {
	m := identity
	for _, op := range transformOp.FindAllStringSubmatch(s, -1) {
		var args []float64
		for _, f := range strings.FieldsFunc(op[2], func(r rune) bool { return r == ',' || r == ' ' }) {
			v, err := strconv.ParseFloat(f, 64)
			require.NoError(t, err, s)
			args = append(args, v)
		}
		var n affine
		switch op[1] {
		case "scale":
			n = affine{a: args[0], d: args[len(args)-1]}
		case "translate":
			n = affine{a: 1, d: 1, e: args[0], f: args[1]}
		case "rotate":
			r := args[0] * math.Pi / 180
			n = affine{a: math.Cos(r), b: math.Sin(r), c: -math.Sin(r), d: math.Cos(r)}
		default:
			t.Fatalf("unknown SVG transform %q", op[1])
		}
		m = m.then(n)
	}
	return m
}

var fontSize = regexp.MustCompile(`font-size:([0-9.]+)px`)

// textOutside returns every text element of an SVG chart whose box (its
// advance width, measured with the plot's own font, by its ascent and
// descent) reaches outside the viewBox, by more than half a point.
func textOutside(t *testing.T, svg []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	stack := []affine{identity}
	var w, h float64
	var bad []string
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := func(name string) string {
				for _, a := range el.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			m := stack[len(stack)-1].then(parseTransform(t, attr("transform")))
			stack = append(stack, m)
			switch el.Name.Local {
			case "svg":
				_, err := fmt.Sscanf(attr("viewBox"), "0 0 %g %g", &w, &h)
				require.NoError(t, err)
			case "text":
				var body string
				require.NoError(t, dec.DecodeElement(&body, &el))
				stack = stack[:len(stack)-1]
				x, _ := strconv.ParseFloat(attr("x"), 64)
				y, _ := strconv.ParseFloat(attr("y"), 64)
				sm := fontSize.FindStringSubmatch(attr("style"))
				require.NotNil(t, sm, "text %q has no font size", body)
				size, _ := strconv.ParseFloat(sm[1], 64)
				face := font.DefaultCache.Lookup(plot.DefaultFont, font.Length(size))
				width := float64(face.Width(body))
				ext := face.Extents()
				for _, corner := range [][2]float64{{x, y - float64(ext.Ascent)}, {x + width, y - float64(ext.Ascent)}, {x, y + float64(ext.Descent)}, {x + width, y + float64(ext.Descent)}} {
					px, py := m.apply(corner[0], corner[1])
					if px < -0.5 || px > w+0.5 || py < -0.5 || py > h+0.5 {
						bad = append(bad, fmt.Sprintf("%q reaches (%.1f, %.1f), outside 0 0 %g %g", body, px, py, w, h))
						break
					}
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	require.Positive(t, w, "no viewBox")
	return bad
}

// TestChartTextInsideCanvas: no title, axis label, tick label, legend entry
// or note of any chart the report draws reaches outside its canvas, on the
// fixture and on the committed reference run (whose long titles were
// clipped before the report wrapped them).
func TestChartTextInsideCanvas(t *testing.T) {
	for _, raw := range []string{fixture, filepath.Join("..", "..", "results", "raw")} {
		t.Run(raw, func(t *testing.T) {
			if _, err := os.Stat(raw); os.IsNotExist(err) {
				t.Skipf("%s is absent", raw)
			}
			out := t.TempDir()
			var stderr bytes.Buffer
			require.NoError(t, run([]string{"-raw", raw, "-out", out}, &stderr), stderr.String())
			svgs, err := filepath.Glob(filepath.Join(out, "charts", "*.svg"))
			require.NoError(t, err)
			require.NotEmpty(t, svgs)
			for _, path := range svgs {
				svg, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Empty(t, textOutside(t, svg), filepath.Base(path))
			}
		})
	}
}

// TestTextOutsideCatchesClipping: the check itself sees text that starts
// left of the canvas, ends right of it, or is rotated off its top.
func TestTextOutsideCatchesClipping(t *testing.T) {
	doc := func(text string) []byte {
		return []byte(`<svg width="100pt" height="50pt" viewBox="0 0 100 50"><g transform="scale(1, -1) translate(0, -50)">` + text + `</g></svg>`)
	}
	cases := []struct {
		name    string
		text    string
		outside bool
	}{
		{"inside", `<text x="10" y="-20" transform="scale(1, -1)" style="font-size:10px">ok</text>`, false},
		{"starts left of the canvas", `<text x="-8" y="-20" transform="scale(1, -1)" style="font-size:10px">title</text>`, true},
		{"ends right of the canvas", `<text x="60" y="-20" transform="scale(1, -1)" style="font-size:10px">a long legend entry</text>`, true},
		{"above the canvas", `<text x="10" y="-49" transform="scale(1, -1)" style="font-size:10px">top</text>`, true},
		{"rotated inside", `<g transform="rotate(90)"><text x="10" y="20" transform="scale(1, -1)" style="font-size:10px">y</text></g>`, false},
		{"rotated outside", `<g transform="rotate(90)"><text x="10" y="-20" transform="scale(1, -1)" style="font-size:10px">y label</text></g>`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.outside, len(textOutside(t, doc(tc.text))) > 0)
		})
	}
}
