package recovery

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"webswitch/bench/testbed"
)

// AdminAddr is the switch's admin API address in a site of this package:
// the switch's own address, never the VIP.
const AdminAddr = testbed.SwitchIP + ":9100"

// scrapeTimeout bounds one scrape.
const scrapeTimeout = 2 * time.Second

// scraper reads the switch's /metrics from inside the switch's namespace,
// over one kept-alive connection.
type scraper struct {
	url    string
	client *http.Client
}

// newScraper returns a scraper of the switch at AdminAddr in tb.
func newScraper(tb *testbed.Testbed) *scraper {
	dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = tb.Do("sw", func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &scraper{
		url: "http://" + AdminAddr + "/metrics",
		client: &http.Client{
			Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 1, DisableCompression: true},
			Timeout:   scrapeTimeout,
		},
	}
}

// scrape returns the switch's counters now.
func (s *scraper) scrape() (Counters, error) {
	resp, err := s.client.Get(s.url)
	if err != nil {
		return Counters{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Counters{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Counters{}, fmt.Errorf("recovery: GET %s: %s", s.url, resp.Status)
	}
	return parseCounters(string(body))
}

// close drops the kept-alive connection.
func (s *scraper) close() { s.client.CloseIdleConnections() }

// Counters are the switch's recovery counters, summed over its shards.
type Counters struct {
	Lookup     uint64 `json:"lookup"`     // recovered_flows_total{how="lookup"}
	Cookie     uint64 `json:"cookie"`     // recovered_flows_total{how="cookie"}
	Asked      uint64 `json:"asked"`      // recovery_asked_total
	Lookups    uint64 `json:"lookups"`    // recovery_queries_total: LOOKUP messages sent
	Unanswered uint64 `json:"unanswered"` // recovery_unanswered_total
	Conflicts  uint64 `json:"conflicts"`  // recovery_conflicts_total
	Recovering uint64 `json:"-"`          // the recovering gauge
	HandoffsOK uint64 `json:"-"`          // handoffs_total{result="ok"}
	// Connections counts handshakes completed (connections_total): in a
	// Run, where no client connects, ACKs that passed for a handshake's
	// last one, their acknowledgement number a valid SYN cookie by chance
	// (24 bits of MAC, two epochs: about one ACK in ten million).
	Connections uint64            `json:"connections"`
	Forwarded   uint64            `json:"forwarded"`  // frames_forwarded_total
	Usable      uint64            `json:"-"`          // backend_usable: shards times back-ends the shards may use
	FramesIn    uint64            `json:"frames_in"`  // frames_received_total
	RingDrops   uint64            `json:"ring_drops"` // ring_drops_total
	Drops       map[string]uint64 `json:"drops"`      // dropped_frames_total by reason, those not 0
	Latency     Histogram         `json:"latency"`    // recovery_latency_seconds
}

// sub returns c less before, the counts of what happened in between (the
// gauges, Recovering and Usable, are c's).
func (c Counters) sub(before Counters) Counters {
	d := Counters{
		Lookup: c.Lookup - before.Lookup, Cookie: c.Cookie - before.Cookie,
		Asked: c.Asked - before.Asked, Lookups: c.Lookups - before.Lookups,
		Unanswered: c.Unanswered - before.Unanswered, Conflicts: c.Conflicts - before.Conflicts,
		Recovering: c.Recovering, HandoffsOK: c.HandoffsOK - before.HandoffsOK,
		Connections: c.Connections - before.Connections, Forwarded: c.Forwarded - before.Forwarded, Usable: c.Usable,
		FramesIn: c.FramesIn - before.FramesIn, RingDrops: c.RingDrops - before.RingDrops,
		Drops:   map[string]uint64{},
		Latency: c.Latency.sub(before.Latency),
	}
	for reason, n := range c.Drops {
		if n > before.Drops[reason] {
			d.Drops[reason] = n - before.Drops[reason]
		}
	}
	return d
}

// Histogram is a Prometheus histogram summed over the shards.
type Histogram struct {
	// Bounds are the buckets' upper bounds in seconds, ascending, but for
	// the last one, +Inf, which JSON cannot hold.
	Bounds []float64 `json:"bounds"`
	// Counts are cumulative, by bound; one more at the end counts all.
	Counts []uint64 `json:"counts"`
	Sum    float64  `json:"sum"` // seconds
}

// sub returns h less before (the same bounds, or none).
func (h Histogram) sub(before Histogram) Histogram {
	d := Histogram{Bounds: h.Bounds, Counts: slices.Clone(h.Counts), Sum: h.Sum - before.Sum}
	if len(before.Counts) == len(d.Counts) {
		for i := range d.Counts {
			d.Counts[i] -= before.Counts[i]
		}
	}
	return d
}

// Count returns the number of observations.
func (h Histogram) Count() uint64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Quantile returns the upper bound of the bucket holding quantile q (0 to
// 1) of the observations, in seconds: +Inf past the last bound, 0 for no
// observations.
func (h Histogram) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	for i, c := range h.Counts[:len(h.Bounds)] {
		if c >= max(rank, 1) {
			return h.Bounds[i]
		}
	}
	return math.Inf(1)
}

// Names of the series Counters reads, without the "webswitch_" prefix.
const (
	seriesRecovered = "recovered_flows_total"
	seriesHandoffs  = "handoffs_total"
	seriesDrops     = "dropped_frames_total"
	seriesLatency   = "recovery_latency_seconds"
)

// sums returns the fields of c that are sums of one series over the
// shards, by series name.
func (c *Counters) sums() map[string]*uint64 {
	return map[string]*uint64{
		"recovery_asked_total":      &c.Asked,
		"recovery_queries_total":    &c.Lookups,
		"recovery_unanswered_total": &c.Unanswered,
		"recovery_conflicts_total":  &c.Conflicts,
		"recovering":                &c.Recovering,
		"connections_total":         &c.Connections,
		"backend_usable":            &c.Usable,
		"frames_forwarded_total":    &c.Forwarded,
		"frames_received_total":     &c.FramesIn,
		"ring_drops_total":          &c.RingDrops,
	}
}

// parseCounters reads Counters from a Prometheus text exposition.
func parseCounters(text string) (Counters, error) {
	c := Counters{Drops: map[string]uint64{}}
	sums := c.sums()
	le := map[float64]uint64{}
	seen := 0
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		name, ok := strings.CutPrefix(line, "webswitch_")
		if !ok {
			continue // comments, other exporters' series
		}
		name, labels, value, err := parseSample(name)
		if err != nil {
			return c, fmt.Errorf("recovery: /metrics line %q: %w", line, err)
		}
		v := uint64(value)
		if sum, ok := sums[name]; ok {
			*sum += v
			seen++
			continue
		}
		switch name {
		case seriesRecovered:
			switch labels["how"] {
			case "lookup":
				c.Lookup += v
			case "cookie":
				c.Cookie += v
			}
		case seriesHandoffs:
			if labels["result"] == "ok" {
				c.HandoffsOK += v
			}
		case seriesDrops:
			c.Drops[labels["reason"]] += v
		case seriesLatency + "_bucket":
			b, err := strconv.ParseFloat(labels["le"], 64)
			if err != nil {
				return c, fmt.Errorf("recovery: /metrics line %q: le: %w", line, err)
			}
			le[b] += v
		case seriesLatency + "_sum":
			c.Latency.Sum += value
		default:
			continue
		}
		seen++
	}
	if seen == 0 {
		return c, fmt.Errorf("recovery: /metrics has no webswitch recovery series")
	}
	for b := range le {
		if !math.IsInf(b, 1) {
			c.Latency.Bounds = append(c.Latency.Bounds, b)
		}
	}
	slices.Sort(c.Latency.Bounds)
	for _, b := range append(c.Latency.Bounds, math.Inf(1)) {
		c.Latency.Counts = append(c.Latency.Counts, le[b])
	}
	return c, nil
}

// parseSample splits a sample line, its "webswitch_" prefix removed, into
// the series name, its labels and its value. Label values must not hold a
// quote or a comma (none of the switch's do).
func parseSample(line string) (name string, labels map[string]string, value float64, err error) {
	series, val, ok := strings.Cut(line, " ")
	if !ok {
		return "", nil, 0, fmt.Errorf("no value")
	}
	if value, err = strconv.ParseFloat(strings.TrimSpace(val), 64); err != nil {
		return "", nil, 0, err
	}
	name, rest, ok := strings.Cut(series, "{")
	if !ok {
		return name, nil, value, nil
	}
	rest, ok = strings.CutSuffix(rest, "}")
	if !ok {
		return "", nil, 0, fmt.Errorf("unclosed labels")
	}
	labels = map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return "", nil, 0, fmt.Errorf("label %q", kv)
		}
		labels[k] = v[1 : len(v)-1]
	}
	return name, labels, value, nil
}
