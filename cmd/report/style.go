package main

import (
	"hash/fnv"
	"image/color"
	"math"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette is a colour-blind-friendly qualitative palette (Okabe-Ito, then
// Tableau's), assigned to implementations in implOrder, so that an
// implementation has the same colour on every chart of every report.
var palette = []color.RGBA{
	{0x00, 0x00, 0x00, 0xff}, // black
	{0xe6, 0x9f, 0x00, 0xff}, // orange
	{0x56, 0xb4, 0xe9, 0xff}, // sky blue
	{0x00, 0x9e, 0x73, 0xff}, // bluish green
	{0xd5, 0x5e, 0x00, 0xff}, // vermillion
	{0x00, 0x72, 0xb2, 0xff}, // blue
	{0xcc, 0x79, 0xa7, 0xff}, // reddish purple
	{0x8c, 0x56, 0x4b, 0xff}, // brown
	{0x7f, 0x7f, 0x7f, 0xff}, // grey
	{0xbc, 0xbd, 0x22, 0xff}, // olive
	{0x17, 0xbe, 0xcf, 0xff}, // cyan
	{0x94, 0x67, 0xbd, 0xff}, // purple
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x1f, 0x1f, 0x7a, 0xff}, // navy
	{0x99, 0x33, 0x00, 0xff}, // rust
	{0x66, 0x99, 0xff, 0xff}, // cornflower
	{0x33, 0x66, 0x00, 0xff}, // forest
	{0xcc, 0x00, 0x66, 0xff}, // magenta
	{0x00, 0x66, 0x66, 0xff}, // teal
	{0x99, 0x99, 0x33, 0xff}, // khaki
	{0x80, 0x00, 0x20, 0xff}, // maroon
	{0xf0, 0xe4, 0x42, 0xff}, // yellow: last, it is faint on white
}

// implColor returns name's colour: fixed by its position in implOrder (the
// lab's own implementations never share one), or, for a name the registry
// does not know, picked by a hash of the name, so it is still stable.
func implColor(name string) color.Color {
	if i := rank(remoteOrderList, name); i < len(remoteOrderList) {
		return palette[i%len(palette)] // remote charts show remote names only
	}
	if i := rank(keyedNames, name); i < len(keyedNames) {
		return palette[i%len(palette)] // keyed charts show keyed names only
	}
	order := implOrder()
	if i := rank(order, name); i < len(order) {
		return palette[i%len(palette)]
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}

// polyGlyph is a regular polygon of radius sty.Radius, filled or open:
// with the cross and plus, enough shapes that no two series of a chart
// share one.
type polyGlyph struct {
	sides int
	turn  float64 // rotation, in turns
	open  bool
}

func (g polyGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	var path vg.Path
	r := float64(sty.Radius) * 1.15
	for i := 0; i <= g.sides; i++ {
		a := 2*math.Pi*(float64(i)/float64(g.sides)+g.turn) + math.Pi/2
		p := vg.Point{X: pt.X + vg.Length(r*math.Cos(a)), Y: pt.Y + vg.Length(r*math.Sin(a))}
		if i == 0 {
			path.Move(p)
		} else {
			path.Line(p)
		}
	}
	path.Close()
	c.SetColor(sty.Color)
	if g.open {
		c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(1)})
		c.Stroke(path)
		return
	}
	c.Fill(path)
}

// glyphs are the marks of a chart's series, in order: filled shapes, the
// cross and plus, then the same shapes open.
var glyphs = func() []draw.GlyphDrawer {
	shapes := []polyGlyph{{sides: 4, turn: 0.125}, {sides: 3}, {sides: 4}, {sides: 3, turn: 0.5}, {sides: 5}, {sides: 6, turn: 1.0 / 12}}
	out := []draw.GlyphDrawer{draw.CircleGlyph{}}
	for _, s := range shapes {
		out = append(out, s)
	}
	out = append(out, draw.CrossGlyph{}, draw.PlusGlyph{}, draw.RingGlyph{})
	for _, s := range shapes {
		s.open = true
		out = append(out, s)
	}
	return out
}()

// glyphAt returns the glyph of a chart's i-th series. The first
// len(glyphs) series never share one.
func glyphAt(i int) draw.GlyphDrawer { return glyphs[i%len(glyphs)] }
