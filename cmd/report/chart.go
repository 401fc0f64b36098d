package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart sizes and the width reserved for a legend beside the plot, so that
// the legend never covers data.
const (
	chartWidth  = 8 * vg.Inch
	chartHeight = 4.5 * vg.Inch
	legendWidth = 1.9 * vg.Inch
	pngDPI      = 110
)

// chart is a plot plus the legend and notes drawn to its right.
type chart struct {
	p      *plot.Plot
	title  string       // unwrapped; save wraps it to the plot's width
	legend *plot.Legend // nil: no legend
	// notes are printed under the legend: what the chart leaves out, what
	// its marks mean.
	notes  []string
	height vg.Length
}

func newChart(title, xLabel, yLabel string) *chart {
	p := plot.New()
	p.Title.TextStyle.Font.Size = 13
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	return &chart{p: p, title: title, height: chartHeight}
}

func (c *chart) addLegend(name string, thumbs ...plot.Thumbnailer) {
	if c.legend == nil {
		l := plot.NewLegend()
		l.Top = true
		l.Left = true
		l.TextStyle.Font.Size = font.Length(10)
		c.legend = &l
	}
	c.legend.Add(name, thumbs...)
}

// note adds a line under the legend.
func (c *chart) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// wrap breaks s into lines no wider than width in style, at spaces.
func wrap(style text.Style, s string, width vg.Length) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		try := strings.TrimSpace(line + " " + w)
		if line != "" && style.Width(try) > width {
			lines = append(lines, line)
			try = w
		}
		line = try
	}
	return strings.Join(append(lines, line), "\n")
}

// save writes the chart as base.svg and base.png in dir, on a white
// background.
func (c *chart) save(dir, base string) error {
	side := vg.Length(0)
	if c.legend != nil || len(c.notes) > 0 {
		side = legendWidth
	}
	margin := 0.05 * vg.Inch
	c.p.Title.Text = wrap(c.p.Title.TextStyle, c.title, chartWidth-side-2*margin)
	for _, ext := range []string{"svg", "png"} {
		var canvas vg.CanvasWriterTo
		switch ext {
		case "svg":
			canvas = vgsvg.New(chartWidth, c.height)
		case "png":
			canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(chartWidth, c.height), vgimg.UseDPI(pngDPI))}
		}
		dc := draw.New(canvas)
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		plotArea := dc
		plotArea.Max.Y -= 0.08 * vg.Inch // a margin above the title
		plotArea.Min.X += margin
		plotArea.Max.X -= side
		side := dc
		side.Min.X = dc.Max.X - legendWidth + 0.15*vg.Inch
		side.Max.X -= margin
		side.Max.Y -= 0.45 * vg.Inch // below the title
		top := side.Max.Y
		if c.legend != nil {
			c.legend.Draw(side)
			top -= c.legend.Rectangle(side).Size().Y + 0.15*vg.Inch
		}
		c.drawNotes(side, top)
		c.p.Draw(plotArea)
		path := filepath.Join(dir, base+"."+ext)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := canvas.WriteTo(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// drawNotes writes c.notes in area, from top down, wrapped to its width.
func (c *chart) drawNotes(area draw.Canvas, top vg.Length) {
	style := c.p.Title.TextStyle
	style.Font.Size = font.Length(9)
	style.XAlign, style.YAlign = draw.XLeft, draw.YTop
	for _, n := range c.notes {
		s := wrap(style, n, area.Max.X-area.Min.X)
		area.FillText(style, vg.Point{X: area.Min.X, Y: top}, s)
		top -= style.Height(s) + 0.08*vg.Inch
	}
}

// point is one measured value with its CI; lo and hi are NaN when the CI is
// unavailable (fewer than 6 samples).
type point struct {
	x, y, lo, hi float64
}

// cellPoint is the one conversion from a cell to a plotted point: its
// median and CI mapped through f, a monotone change of unit (the bounds
// are swapped back into order if f decreases), at x. The bounds are NaN
// when the cell has no finite CI.
func cellPoint(c *Cell, x float64, f func(float64) float64) point {
	p := point{x: x, y: f(c.Summary.Center), lo: math.NaN(), hi: math.NaN()}
	if c.HasCI {
		lo, hi := f(c.Summary.Lo), f(c.Summary.Hi)
		p.lo, p.hi = min(lo, hi), max(lo, hi)
	}
	return p
}

// times returns the change of unit that multiplies by k (1e9: seconds to
// ns).
func times(k float64) func(float64) float64 { return func(v float64) float64 { return v * k } }

// mopsPerSec turns seconds per operation into millions of operations per
// second.
func mopsPerSec(sec float64) float64 { return 1e-6 / sec }

// timeUnit returns the unit, among ns, µs and ms, in which the largest of
// a chart's times (in seconds) reads best, and the factor from seconds.
func timeUnit(maxSec float64) (string, float64) {
	switch {
	case maxSec < 1e-6:
		return "ns", 1e9
	case maxSec < 1e-3:
		return "µs", 1e6
	}
	return "ms", 1e3
}

// positive drops a CI that reaches 0 or below: a log axis cannot draw it.
func (p point) positive() point {
	if !(p.lo > 0) || math.IsInf(p.hi, 0) {
		p.lo, p.hi = math.NaN(), math.NaN()
	}
	return p
}

// errXY adapts points to plotter's XYer, YErrorer and XErrorer.
type errXY []point

func (e errXY) Len() int                    { return len(e) }
func (e errXY) XY(i int) (float64, float64) { return e[i].x, e[i].y }
func (e errXY) YError(i int) (float64, float64) {
	return e[i].y - e[i].lo, e[i].hi - e[i].y
}
func (e errXY) XError(i int) (float64, float64) {
	return e[i].x - e[i].lo, e[i].hi - e[i].x
}

func (e errXY) hasCI() bool {
	for _, p := range e {
		if math.IsNaN(p.lo) || math.IsNaN(p.hi) || math.IsInf(p.lo, 0) || math.IsInf(p.hi, 0) {
			return false
		}
	}
	return len(e) > 0
}

// series is one implementation's line or set of marks.
type series struct {
	impl   string
	label  string // the legend's text: the name, marked when racy or broken
	marked bool   // racy or broken: dashed line, or pale marks where there is none
	points errXY
}

// lineOpts are what differs between line charts.
type lineOpts struct {
	logX, logY bool
	xTicks     plot.ConstantTicks // nil: the axis's own
	// noLines draws marks only, for points that are not a series in x
	// (percentiles), each implementation shifted by spread around its x.
	noLines bool
	spread  float64
	// shadeFrom, if not NaN, shades x >= shadeFrom, labelled shadeLabel.
	shadeFrom  float64
	shadeLabel string
}

// lineChart draws one line per series with error bars where the CI is
// available, and a legend beside the plot. Every series has its own glyph.
func lineChart(title, xLabel, yLabel string, ss []series, o lineOpts) (*chart, error) {
	c := newChart(title, xLabel, yLabel)
	if o.logX {
		c.p.X.Scale = plot.LogScale{}
		c.p.X.Tick.Marker = logTicks{}
	}
	if o.logY {
		c.p.Y.Scale = plot.LogScale{}
		c.p.Y.Tick.Marker = logTicks{}
	} else {
		c.p.Y.Tick.Marker = linearTicks{}
	}
	if o.shadeFrom > 0 {
		c.p.Add(shade{from: o.shadeFrom, label: o.shadeLabel})
	}
	for i, s := range ss {
		if len(s.points) == 0 {
			continue
		}
		pts := s.points
		if o.noLines && len(ss) > 1 {
			pts = append(errXY(nil), pts...)
			for j := range pts {
				pts[j].x += o.spread * (float64(i)/float64(len(ss)-1) - 0.5)
			}
		}
		col := implColor(s.impl)
		if s.marked && o.noLines {
			col = barFill(s.impl, true) // no line to dash: pale marks
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
		}
		sc.Color = col
		sc.Shape = glyphAt(i)
		sc.Radius = vg.Points(3.5)
		thumbs := []plot.Thumbnailer{sc}
		if !o.noLines {
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
			}
			l.Color = col
			l.Width = vg.Points(1.5)
			if s.marked {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			c.p.Add(l)
			thumbs = []plot.Thumbnailer{l, sc}
		}
		c.p.Add(sc)
		if pts.hasCI() {
			eb, err := plotter.NewYErrorBars(pts)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
			}
			eb.Color = col
			c.p.Add(eb)
		}
		c.addLegend(s.label, thumbs...)
	}
	if o.xTicks != nil {
		c.p.X.Tick.Marker = o.xTicks
		lo, hi := o.xTicks[0].Value, o.xTicks[len(o.xTicks)-1].Value
		if o.logX {
			c.p.X.Min, c.p.X.Max = lo/1.1, hi*1.1
		} else {
			c.p.X.Min, c.p.X.Max = lo-0.5, hi+0.5
		}
	}
	if o.logY {
		top := c.p.Y.Max
		if o.shadeFrom > 0 {
			top *= 2 // headroom, so that the shade's label sits above the data
		}
		c.p.Y.Min, c.p.Y.Max = roundOut125(c.p.Y.Min, top)
	}
	return c, nil
}

// shade greys the part of a plot at x >= from, with its label at the top:
// where GOMAXPROCS exceeds the machine's cores. It has no data range, so it
// does not move the axes.
type shade struct {
	from  float64
	label string
}

func (s shade) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x0 := trX(s.from)
	if x0 >= c.Max.X {
		return
	}
	x0 = max(x0, c.Min.X)
	c.SetColor(color.RGBA{0xe8, 0xe8, 0xe8, 0xff})
	var rect vg.Path
	rect.Move(vg.Point{X: x0, Y: c.Min.Y})
	rect.Line(vg.Point{X: c.Max.X, Y: c.Min.Y})
	rect.Line(vg.Point{X: c.Max.X, Y: c.Max.Y})
	rect.Line(vg.Point{X: x0, Y: c.Max.Y})
	rect.Close()
	c.Fill(rect)
	style := p.Title.TextStyle
	style.Font.Size = font.Length(9)
	style.Color = color.RGBA{0x50, 0x50, 0x50, 0xff}
	style.XAlign, style.YAlign = draw.XRight, draw.YTop
	c.FillText(style, vg.Point{X: c.Max.X - vg.Points(3), Y: c.Max.Y - vg.Points(3)}, wrap(style, s.label, c.Max.X-x0-vg.Points(6)))
}

// bar is one bar of a bar chart.
type bar struct {
	label  string
	impl   string // colours the bar
	point         // y is the bar's value; lo and hi its CI, NaN when unavailable
	note   string // printed after the bar, e.g. the value
	marked bool   // racy or broken: drawn pale, with an outline
}

// styleBar colours impl's bars: solid, or, when marked (racy or broken),
// pale with a dashed outline.
func styleBar(bc *plotter.BarChart, impl string, marked bool) {
	bc.Color = barFill(impl, marked)
	bc.LineStyle.Width = 0
	if marked {
		bc.LineStyle.Width = vg.Points(1)
		bc.LineStyle.Color = implColor(impl)
		bc.LineStyle.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
	}
}

// barFill returns the colour a bar of impl is filled with: pale when marked.
func barFill(impl string, marked bool) color.Color {
	col := color.RGBAModel.Convert(implColor(impl)).(color.RGBA)
	if marked {
		// A quarter of the colour on white.
		col = color.RGBA{uint8(0xbf + int(col.R)/4), uint8(0xbf + int(col.G)/4), uint8(0xbf + int(col.B)/4), 0xff}
	}
	return col
}

// hbarChart draws horizontal bars (dots on a log axis), one per entry, top
// to bottom in the given order, with CI whiskers where available. refX, if
// not NaN, draws a dashed vertical reference line (e.g. ratio 1).
func hbarChart(title, xLabel string, bars []bar, logX bool, refX float64, refLabel string) (*chart, error) {
	c := newChart(title, xLabel, "")
	c.height = vg.Length(math.Max(2.5, 0.9+0.32*float64(len(bars)))) * vg.Inch
	if logX {
		c.p.X.Scale = plot.LogScale{}
		c.p.X.Tick.Marker = logTicks{}
	} else {
		c.p.X.Tick.Marker = linearTicks{}
	}
	n := len(bars)
	labels := make([]string, n)
	xmax, xmin := 0.0, math.Inf(1)
	for i, b := range bars {
		pos := float64(n - 1 - i) // first bar on top
		labels[n-1-i] = b.label
		if logX {
			// Bars start at 0, which a log axis cannot show: draw a dot.
			sc, err := plotter.NewScatter(plotter.XYs{{X: b.y, Y: pos}})
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, b.label, err)
			}
			sc.Color = implColor(b.impl)
			sc.Shape = draw.CircleGlyph{}
			if b.marked {
				sc.Shape = draw.RingGlyph{}
			}
			sc.Radius = vg.Points(5)
			c.p.Add(sc)
			xmin = math.Min(xmin, b.y)
		} else {
			bc, err := plotter.NewBarChart(plotter.Values{b.y}, vg.Points(14))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, b.label, err)
			}
			bc.Horizontal = true
			bc.XMin = pos
			styleBar(bc, b.impl, b.marked)
			c.p.Add(bc)
		}
		xmax = math.Max(xmax, b.y)
		pt := errXY{{x: b.y, y: pos, lo: b.lo, hi: b.hi}}
		if pt.hasCI() {
			eb, err := plotter.NewXErrorBars(pt)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, b.label, err)
			}
			eb.CapWidth = vg.Points(8)
			c.p.Add(eb)
			xmax = math.Max(xmax, b.hi)
			xmin = math.Min(xmin, b.lo)
		}
		if b.note != "" {
			x := b.y
			if pt.hasCI() {
				x = math.Max(x, b.hi)
			}
			lbl, err := plotter.NewLabels(plotter.XYLabels{
				XYs:    []plotter.XY{{X: x, Y: pos}},
				Labels: []string{"  " + b.note},
			})
			if err == nil {
				lbl.TextStyle[0].Font.Size = font.Length(9)
				lbl.TextStyle[0].YAlign = draw.YCenter
				c.p.Add(lbl)
			}
		}
	}
	if !math.IsNaN(refX) {
		line, err := plotter.NewLine(plotter.XYs{{X: refX, Y: -0.5}, {X: refX, Y: float64(n) - 0.5}})
		if err == nil {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			line.Color = color.RGBA{0x60, 0x60, 0x60, 0xff}
			line.Width = vg.Points(1.5)
			c.p.Add(line)
			c.note("dashed line: %s", refLabel)
		}
		xmax = math.Max(xmax, refX)
		xmin = math.Min(xmin, refX)
	}
	c.p.NominalY(labels...)
	if !logX {
		c.p.X.Min = 0
	}
	c.p.X.Max = xmax * 1.25 // room for the notes
	if logX {
		// Room on the right for the notes: a third of the axis.
		span := math.Log10(xmax / (xmin / 1.2))
		c.p.X.Min, c.p.X.Max = roundOut125(xmin/1.2, xmax*math.Pow(10, span/2))
	}
	return c, nil
}

// groupedBars draws vertical bars grouped by category (x), one bar per
// implementation within each group, with CI whiskers.
func groupedBars(title, xLabel, yLabel string, categories []string, ss []series) (*chart, error) {
	c := newChart(title, xLabel, yLabel)
	c.p.Y.Tick.Marker = linearTicks{}
	w := vg.Points(16)
	for j, s := range ss {
		vals := make(plotter.Values, len(categories))
		var pts errXY
		for _, p := range s.points {
			vals[int(p.x)] = p.y
			pts = append(pts, p)
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
		}
		styleBar(bc, s.impl, s.marked)
		bc.Offset = w * vg.Length(float64(j)-float64(len(ss)-1)/2)
		c.p.Add(bc)
		c.addLegend(s.label, bc)
		if pts.hasCI() {
			eb, err := plotter.NewYErrorBars(pts)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
			}
			// Whiskers sit on their bar: shift by the same offset.
			c.p.Add(offsetPlotter{eb, bc.Offset})
		}
	}
	c.p.NominalX(categories...)
	c.p.Y.Min = 0
	return c, nil
}

// offsetPlotter draws a plotter shifted right by dx drawing units, to put
// error bars on grouped bars.
type offsetPlotter struct {
	plot.Plotter
	dx vg.Length
}

func (o offsetPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	c.Min.X += o.dx
	c.Max.X += o.dx
	o.Plotter.Plot(c, p)
}

func (o offsetPlotter) DataRange() (xmin, xmax, ymin, ymax float64) {
	if dr, ok := o.Plotter.(plot.DataRanger); ok {
		return dr.DataRange()
	}
	return math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
}

// sortBars sorts bars by value, ascending.
func sortBars(bs []bar) {
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].y < bs[j].y })
}

// steps125 are the mantissas of round axis ends and tick steps.
var steps125 = []float64{1, 2, 5, 10}

// roundOut125 widens [lo, hi] (both > 0) to values of the form 1, 2 or 5
// times a power of ten, so that a log axis starts and ends on a label.
func roundOut125(lo, hi float64) (float64, float64) {
	if !(lo > 0) || !(hi > 0) {
		return lo, hi
	}
	down := func(v float64) float64 {
		e := math.Pow(10, math.Floor(math.Log10(v)))
		for i := len(steps125) - 1; i >= 0; i-- {
			if m := steps125[i] * e; m <= v*1.0000001 {
				return m
			}
		}
		return e
	}
	up := func(v float64) float64 {
		e := math.Pow(10, math.Floor(math.Log10(v)))
		for _, s := range steps125 {
			if m := s * e; m >= v*0.9999999 {
				return m
			}
		}
		return 10 * e
	}
	return down(lo), up(hi)
}

// logTicks labels a log axis at every power of ten and, when the axis
// spans up to three decades, at 2 and 5 times each; narrower than five
// times, at every multiple. The other multiples are unlabelled minor
// ticks, so that a value can be read between labels.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	if min <= 0 || max <= 0 {
		return nil
	}
	label := func(m int) bool {
		switch span := max / min; {
		case span <= 5:
			return true
		case span <= 1000:
			return m == 1 || m == 2 || m == 5
		}
		return m == 1
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		base := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := base * float64(m)
			if v < min*0.999 || v > max*1.001 {
				continue
			}
			t := plot.Tick{Value: v}
			if label(m) {
				t.Label = tickLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// linearTicks labels a linear axis every 1, 2 or 5 times a power of ten,
// 4 to 10 labels over the axis, with an unlabelled minor tick between.
type linearTicks struct{}

func (linearTicks) Ticks(min, max float64) []plot.Tick {
	if !(max > min) {
		return []plot.Tick{{Value: min, Label: tickLabel(min)}}
	}
	e := math.Pow(10, math.Floor(math.Log10((max-min)/4)))
	step := e
	for _, s := range steps125 {
		if (max-min)/(s*e) <= 10 {
			step = s * e
			break
		}
	}
	var ticks []plot.Tick
	for i := math.Ceil(min/step - 1e-9); i*step <= max+step*1e-9; i++ {
		v := i * step
		ticks = append(ticks, plot.Tick{Value: v, Label: tickLabel(v)})
		if m := v + step/2; m <= max {
			ticks = append(ticks, plot.Tick{Value: m})
		}
	}
	return ticks
}

// tickLabel prints an axis value without trailing zeros or float noise.
func tickLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
