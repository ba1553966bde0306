package policysim

import (
	"fmt"
	"io"
	"strings"
	"time"

	"webswitch/l7"
)

// Point is the results of every policy for one cache size.
type Point struct {
	Cache   int
	Results []Result
}

// Sweep runs Compare for each cache size, cfg's Cache aside.
func Sweep(cfg Config, policies []l7.Policy, caches []int) ([]Point, error) {
	var out []Point
	for _, c := range caches {
		cfg.Cache = c
		rs, err := Compare(cfg, policies)
		if err != nil {
			return nil, err
		}
		out = append(out, Point{Cache: c, Results: rs})
	}
	return out, nil
}

// WriteTable writes results as a Markdown table.
func WriteTable(w io.Writer, results []Result) error {
	var b strings.Builder
	b.WriteString("| policy | hit rate | requests max/mean | outstanding max/mean | throughput (req/s) | mean response | p99 response |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.1f %% | %.2f | %.2f | %.0f | %s | %s |\n", r.Policy, 100*r.HitRate,
			r.RequestsMaxMean, r.OutstandingMaxMean, r.Throughput, ms(r.MeanResponse), ms(r.P99Response))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSweepTable writes a Markdown table of hit rate and throughput by
// cache size (rows) and policy (columns).
func WriteSweepTable(w io.Writer, points []Point) error {
	if len(points) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("| cache per back-end |")
	for _, r := range points[0].Results {
		fmt.Fprintf(&b, " %s |", r.Policy)
	}
	b.WriteString("\n|---:|" + strings.Repeat("---:|", len(points[0].Results)) + "\n")
	for _, p := range points {
		fmt.Fprintf(&b, "| %d |", p.Cache)
		for _, r := range p.Results {
			fmt.Fprintf(&b, " %.1f %%, %.0f/s |", 100*r.HitRate, r.Throughput)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
