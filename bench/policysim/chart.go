package policysim

import (
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Chart files of WriteCharts.
const (
	HitRateFile    = "hitrate.png"
	ThroughputFile = "throughput.png"
	BalanceFile    = "balance.png"
)

// WriteCharts writes into dir, which must exist, three PNG charts of a
// sweep against the cache size: hit rate, throughput and outstanding
// max/mean, a line per policy. Cache sizes must be positive (the x axis
// is logarithmic); without points it writes nothing.
func WriteCharts(dir string, points []Point) error {
	if len(points) == 0 {
		return nil
	}
	charts := []struct {
		file, title, yLabel string
		value               func(Result) float64
	}{
		{HitRateFile, "Cache hit rate", "hit rate (%)", func(r Result) float64 { return 100 * r.HitRate }},
		{ThroughputFile, "Throughput", "requests/s", func(r Result) float64 { return r.Throughput }},
		{BalanceFile, "Load imbalance: outstanding requests, max/mean", "max/mean", func(r Result) float64 { return r.OutstandingMaxMean }},
	}
	ticks := make(plot.ConstantTicks, len(points))
	for i, pt := range points {
		ticks[i] = plot.Tick{Value: float64(pt.Cache), Label: strconv.Itoa(pt.Cache)}
	}
	for _, c := range charts {
		p := plot.New()
		p.Title.Text = c.title
		p.X.Label.Text = "cache per back-end (objects)"
		p.Y.Label.Text = c.yLabel
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, ticks
		p.Add(plotter.NewGrid())
		p.Legend.XOffs, p.Legend.YOffs = -vg.Points(8), vg.Points(8) // bottom right, below the lines
		for i := range points[0].Results {
			xys := make(plotter.XYs, len(points))
			for j, pt := range points {
				xys[j] = plotter.XY{X: float64(pt.Cache), Y: c.value(pt.Results[i])}
			}
			line, dots, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			line.Color, dots.Color, dots.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
			line.Width = vg.Points(1.5)
			p.Add(line, dots)
			p.Legend.Add(points[0].Results[i].Policy, line, dots)
		}
		p.Y.Min = 0
		if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}
