package report

import (
	"errors"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart size: 800x500 pixels at the PNG canvas's resolution.
const (
	chartWidth  = 800 * vg.Inch / vgimg.DefaultDPI
	chartHeight = 500 * vg.Inch / vgimg.DefaultDPI
)

// chartMargin is the blank border around a chart, in points.
const chartMargin vg.Length = 8

// logDecades is how many decades the values of a chart must span for its
// y axis to be logarithmic.
const logDecades = 2

// chart is one PNG file: its labels and lines.
type chart struct {
	file   string // in the report directory
	alt    string // the image's text in the Markdown
	title  string
	yLabel string   // short: gonum centres it on the arithmetic mean, also on a log axis
	series []series // at least one, each with at least one point
}

// series is one line of a chart: a set-up, maybe in one connection mode.
type series struct {
	name   string
	setup  string
	dashed bool
	points plotter.XYs // x is the response size; sorted by x
}

// WriteCharts writes throughput, CPU and latency charts as PNG files into
// dir, which must exist. A chart without data points is not written.
func WriteCharts(dir string, r *Report) error {
	for _, c := range buildCharts(r) {
		p, err := c.plot()
		if err != nil {
			return err
		}
		img := vgimg.NewWith(vgimg.UseWH(chartWidth, chartHeight), vgimg.UseDPI(vgimg.DefaultDPI))
		p.Draw(draw.Crop(draw.New(img), chartMargin, -chartMargin, chartMargin, -chartMargin))
		f, err := os.Create(filepath.Join(dir, c.file))
		if err != nil {
			return err
		}
		_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
		if err := errors.Join(err, f.Close()); err != nil {
			return err
		}
	}
	return nil
}

// buildCharts returns the charts of r that have data points.
func buildCharts(r *Report) []chart {
	rows := sortedRows(r.Rows)
	keepAlive := filterRows(rows, func(r Row) bool { return r.KeepAlive })
	newConn := filterRows(rows, func(r Row) bool { return !r.KeepAlive })
	// Throughput and latency compare set-ups on keep-alive rows, or on
	// new-connection rows when the run had no keep-alive rows.
	compared, mode := keepAlive, "keep-alive"
	if len(keepAlive) == 0 {
		compared, mode = newConn, "new connection per request"
	}
	isProxy := func(r Row) bool { return r.Setup != SetupDirect && r.CPUPer1k >= 0 }
	cpu := func(r Row) float64 { return r.CPUPer1k }
	all := []chart{
		{
			file: ThroughputFile, alt: "throughput",
			title:  "Throughput (response body MB/s), " + mode,
			yLabel: "MB/s",
			series: collectSeries(compared, "", false, func(r Row) float64 { return r.Load.MBps }),
		},
		{
			file: CPUFile, alt: "cpu",
			title:  "Switch or proxy CPU (user+system seconds) per 1,000 requests",
			yLabel: "CPU s",
			series: append(
				collectSeries(filterRows(keepAlive, isProxy), "", false, cpu),
				collectSeries(filterRows(newConn, isProxy), " (new conn)", true, cpu)...),
		},
		{
			file: LatencyFile, alt: "latency",
			title:  "p99 response time (ms), " + mode,
			yLabel: "ms",
			series: collectSeries(compared, "", false, func(r Row) float64 { return r.Load.Latency.P99 }),
		},
	}
	return slices.DeleteFunc(all, func(c chart) bool { return len(c.series) == 0 })
}

// filterRows returns the rows that keep accepts, in their order.
func filterRows(rows []Row, keep func(Row) bool) []Row {
	return slices.DeleteFunc(slices.Clone(rows), func(r Row) bool { return !keep(r) })
}

// collectSeries makes one series per set-up from rows in display order,
// with y = value(row), in set-up order. Points whose value is not finite
// or whose size is not positive (the x axis is logarithmic) are left out,
// and so are series without points. Each series is named
// after its set-up plus suffix.
func collectSeries(rows []Row, suffix string, dashed bool, value func(Row) float64) []series {
	var out []series
	for _, r := range rows {
		y := value(r)
		if !finite(y) || r.Size <= 0 {
			continue
		}
		i := slices.IndexFunc(out, func(s series) bool { return s.setup == r.Setup })
		if i < 0 {
			out = append(out, series{name: r.Setup + suffix, setup: r.Setup, dashed: dashed})
			i = len(out) - 1
		}
		out[i].points = append(out[i].points, plotter.XY{X: float64(r.Size), Y: y})
	}
	slices.SortStableFunc(out, func(a, b series) int { return compareSetups(a.setup, b.setup) })
	return out
}

// plot draws c: log x axis with a tick per response size, log y axis when
// the values span more than logDecades decades (non-positive values are
// then left out), a line with points per series and a legend.
func (c chart) plot() (*plot.Plot, error) {
	var ys []float64
	for _, s := range c.series {
		for _, pt := range s.points {
			ys = append(ys, pt.Y)
		}
	}
	logY := spansDecades(ys, logDecades)

	p := plot.New()
	p.Title.Text = c.title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "response size"
	p.Y.Label.Text = c.yLabel
	p.Add(plotter.NewGrid())
	var sizes []float64
	var setups []string // distinct, to give other set-ups distinct styles
	for _, s := range c.series {
		if !slices.Contains(setups, s.setup) {
			setups = append(setups, s.setup)
		}
	}
	for _, s := range c.series {
		pts := s.points
		if logY {
			pts = slices.DeleteFunc(slices.Clone(pts), func(pt plotter.XY) bool { return pt.Y <= 0 })
			if len(pts) == 0 {
				continue
			}
		}
		line, dots, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		col, shape := setupStyle(s.setup, slices.Index(setups, s.setup))
		line.Color, line.Width = col, vg.Points(1.5)
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		dots.Color, dots.Shape, dots.Radius = col, shape, vg.Points(3)
		p.Add(line, dots)
		p.Legend.Add(s.name, line, dots)
		for _, pt := range pts {
			sizes = append(sizes, pt.X)
		}
	}
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)

	ticks := make(plot.ConstantTicks, len(sizes))
	for i, x := range sizes {
		ticks[i] = plot.Tick{Value: x, Label: formatSize(int64(x))}
	}
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, ticks
	// Room around the first and last size; also keeps a single size a range.
	p.X.Min, p.X.Max = sizes[0]/1.5, sizes[len(sizes)-1]*1.5
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, inRange{plot.LogTicks{Prec: -1}}
		p.Y.Min, p.Y.Max = p.Y.Min/1.5, p.Y.Max*1.5
	} else {
		p.Y.Min = 0
		p.Y.Max *= 1.05
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(8)
	return p, nil
}

// inRange drops the ticks outside the axis range, for which the plot
// would otherwise leave room.
type inRange struct{ plot.Ticker }

// Ticks implements plot.Ticker.
func (t inRange) Ticks(lo, hi float64) []plot.Tick {
	return slices.DeleteFunc(t.Ticker.Ticks(lo, hi), func(tk plot.Tick) bool { return tk.Value < lo || tk.Value > hi })
}

// spansDecades reports whether the positive values among vs span more than
// n decades.
func spansDecades(vs []float64, n float64) bool {
	lo, hi := math.Inf(1), 0.0
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return hi > 0 && math.Log10(hi/lo) > n
}

// setupStyle is the colour and point shape of a set-up's lines; i numbers
// the set-ups not known in advance.
func setupStyle(setup string, i int) (color.Color, draw.GlyphDrawer) {
	switch setup {
	case SetupDirect:
		return color.RGBA{R: 90, G: 90, B: 90, A: 255}, draw.CircleGlyph{}
	case SetupWebswitch:
		return color.RGBA{R: 31, G: 119, B: 180, A: 255}, draw.SquareGlyph{}
	case SetupHAProxy:
		return color.RGBA{R: 230, G: 110, B: 10, A: 255}, draw.TriangleGlyph{}
	case SetupNginx:
		return color.RGBA{R: 44, G: 150, B: 44, A: 255}, draw.PyramidGlyph{}
	}
	return plotutil.Color(i), plotutil.Shape(i)
}
