package load

import (
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms count microseconds from 1 µs to 60 s with 3
// significant digits (about 140 KB each).
const (
	minLatencyMicros = 1
	maxLatencyMicros = 60_000_000
	latencyDigits    = 3
)

// newHistogram returns an empty latency histogram.
func newHistogram() *hdr.Histogram {
	return hdr.New(minLatencyMicros, maxLatencyMicros, latencyDigits)
}

// recordLatency adds d to h, clamped to the histogram's range. It does not
// allocate.
func recordLatency(h *hdr.Histogram, d time.Duration) {
	us := min(max(d.Microseconds(), minLatencyMicros), maxLatencyMicros)
	h.RecordValue(us) // cannot fail: us is in range
}

// latencyOf returns h's percentiles, maximum and mean in milliseconds; all
// zero for an empty histogram.
func latencyOf(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1e3 }
	return Latency{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
		Mean: h.Mean() / 1e3,
	}
}
