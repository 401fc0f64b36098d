package main

import (
	"hash/fnv"
	"image/color"

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
	{0xf0, 0xe4, 0x42, 0xff}, // yellow: last, it is faint on white
}

// implColor returns name's colour: fixed by its position in implOrder (the
// lab's own implementations never share one), or, for a name the registry
// does not know, picked by a hash of the name, so it is still stable.
func implColor(name string) color.Color {
	order := implOrder()
	if i := rank(order, name); i < len(order) {
		return palette[i%len(palette)]
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}

// implShape is a stable index for name's glyph shape, so that lines are
// told apart without colour too.
func implShape(name string) int {
	order := implOrder()
	if i := rank(order, name); i < len(order) {
		return i
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % 7)
}

var glyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
	draw.PlusGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{},
}

func glyph(impl string) draw.GlyphDrawer { return glyphs[implShape(impl)%len(glyphs)] }
