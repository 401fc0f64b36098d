package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
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

// chart is a plot plus the legend drawn to its right.
type chart struct {
	p      *plot.Plot
	legend *plot.Legend // nil: no legend
	height vg.Length
}

func newChart(title, xLabel, yLabel string) *chart {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 13
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	return &chart{p: p, height: chartHeight}
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

// save writes the chart as base.svg and base.png in dir, on a white
// background, and returns the two file names.
func (c *chart) save(dir, base string) error {
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
		plotArea.Min.X += 0.05 * vg.Inch
		if c.legend != nil {
			plotArea.Max.X -= legendWidth
			legendArea := dc
			legendArea.Min.X = dc.Max.X - legendWidth + 0.15*vg.Inch
			legendArea.Max.Y -= 0.45 * vg.Inch // below the title
			c.legend.Draw(legendArea)
		}
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

// series is one implementation's line.
type series struct {
	impl   string
	points errXY
}

// lineChart draws one line per series with error bars where the CI is
// available, and a legend beside the plot.
func lineChart(title, xLabel, yLabel string, ss []series, logX, logY bool, xTicks []float64) (*chart, error) {
	c := newChart(title, xLabel, yLabel)
	if logX {
		c.p.X.Scale = plot.LogScale{}
	}
	if logY {
		c.p.Y.Scale = plot.LogScale{}
		c.p.Y.Tick.Marker = logTicks{}
	}
	if len(xTicks) > 0 {
		var ticks plot.ConstantTicks
		for _, x := range xTicks {
			ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprint(x)})
		}
		c.p.X.Tick.Marker = ticks
		c.p.X.Min, c.p.X.Max = xTicks[0]*0.9, xTicks[len(xTicks)-1]*1.1
	}
	for _, s := range ss {
		if len(s.points) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.points)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
		}
		col := implColor(s.impl)
		l.Color = col
		l.Width = vg.Points(1.5)
		pts.Color = col
		pts.Shape = glyph(s.impl)
		pts.Radius = vg.Points(3)
		c.p.Add(l, pts)
		if s.points.hasCI() {
			eb, err := plotter.NewYErrorBars(s.points)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, s.impl, err)
			}
			eb.Color = col
			c.p.Add(eb)
		}
		c.addLegend(s.impl, l, pts)
	}
	return c, nil
}

// bar is one bar of a bar chart.
type bar struct {
	label string
	impl  string // colours the bar
	point        // y is the bar's value; lo and hi its CI, NaN when unavailable
	note  string // printed after the bar, e.g. the value
}

// hbarChart draws horizontal bars (dots on a log axis), one per entry, top
// to bottom in the given order, with CI whiskers where available. refX, if not NaN, draws a
// dashed vertical reference line (e.g. ratio 1).
func hbarChart(title, xLabel string, bars []bar, logX bool, refX float64, refLabel string) (*chart, error) {
	c := newChart(title, xLabel, "")
	c.height = vg.Length(math.Max(2.5, 0.9+0.32*float64(len(bars)))) * vg.Inch
	if logX {
		c.p.X.Scale = plot.LogScale{}
		c.p.X.Tick.Marker = logTicks{}
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
			bc.Color = implColor(b.impl)
			bc.LineStyle.Width = 0
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
			lbl, err := plotter.NewLabels(plotter.XYLabels{
				XYs:    []plotter.XY{{X: math.Max(b.y, pt[0].hi), Y: pos}},
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
			c.p.Add(line)
			c.p.X.Label.Text += " (dashed: " + refLabel + ")"
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
		c.p.X.Min = xmin / 1.5
		c.p.X.Max = xmax * 3
	}
	return c, nil
}

// groupedBars draws vertical bars grouped by category (x), one bar per
// implementation within each group, with CI whiskers.
func groupedBars(title, xLabel, yLabel string, categories []string, impls []string, value func(cat, impl string) (point, bool)) (*chart, error) {
	c := newChart(title, xLabel, yLabel)
	w := vg.Points(16)
	for j, impl := range impls {
		vals := make(plotter.Values, len(categories))
		var pts errXY
		for i, cat := range categories {
			p, ok := value(cat, impl)
			if !ok {
				continue
			}
			vals[i] = p.y
			pts = append(pts, point{x: float64(i), y: p.y, lo: p.lo, hi: p.hi})
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", title, impl, err)
		}
		bc.Color = implColor(impl)
		bc.LineStyle.Width = 0
		bc.Offset = w * vg.Length(float64(j)-float64(len(impls)-1)/2)
		c.p.Add(bc)
		c.addLegend(impl, bc)
		if pts.hasCI() {
			eb, err := plotter.NewYErrorBars(pts)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", title, impl, err)
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

// logTicks labels a log axis at 1, 2 and 5 times each power of ten (only
// the powers of ten when it spans more than three decades), with unlabelled
// minor ticks between, so that a range narrower than a decade still has
// labels and a wide one is not crowded.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	if min <= 0 || max <= 0 {
		return nil
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
			if m == 1 || (max/min <= 1000 && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
