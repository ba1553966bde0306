package main

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"webswitch/shard"
)

// collector exposes the shards' counters to Prometheus, read at each
// scrape.
type collector struct {
	dp    dataPath
	descs map[string]*prometheus.Desc
}

// metric is one exported series family: its name, help and labels.
type metric struct {
	name, help string
	labels     []string
}

var metrics = []metric{
	{"frames_received_total", "Frames the shard took from its ring.", []string{"shard"}},
	{"frames_forwarded_total", "Client frames of spliced flows sent on to their back-end.", []string{"shard"}},
	{"frames_sent_total", "Frames the switch built itself: SYN-ACKs, ACKs, its own responses, RSTs.", []string{"shard"}},
	{"tx_dropped_total", "Frames the transmit path refused.", []string{"shard"}},
	{"ring_packets_total", "Frames the kernel put in the shard's ring.", []string{"shard"}},
	{"ring_drops_total", "Frames the kernel dropped because the shard's ring was full.", []string{"shard"}},
	{"dropped_frames_total", "Frames the switch dropped, by reason (malformed input and others).", []string{"shard", "reason"}},
	{"flows", "Flows in the table, by state (a census every second).", []string{"shard", "state"}},
	{"handshakes_total", "SYN-ACKs sent (with a SYN cookie).", []string{"shard"}},
	{"connections_total", "Connections accepted: handshakes completed with a valid cookie.", []string{"shard"}},
	{"flows_evicted_total", "Flows waiting for their request head reset to make room in a full table.", []string{"shard"}},
	{"handoffs_total", "Handoffs by result: ok, refused (the agent answered ERR), timeout, lost (control connection broke).", []string{"shard", "result"}},
	{"handoff_retries_total", "Handoffs sent to another back-end after a refusal.", []string{"shard"}},
	{"http_errors_total", "Responses the switch answered itself, by status.", []string{"shard", "status"}},
	{"resets_total", "RSTs the switch sent.", []string{"shard"}},
	{"tls_refused_total", "TLS connections the switch closed, by the HTTP status it would have answered.", []string{"shard", "status"}},
	{"protocol_mismatch_total", "Plain HTTP on a TLS port, or TLS on an HTTP port: closed.", []string{"shard"}},
	{"backend_usable", "1 when the shard may hand new connections to the back-end.", []string{"shard", "backend"}},
	{"backend_active_flows", "Flows spliced to the back-end.", []string{"shard", "backend"}},
	{"backend_handoffs_total", "Handoffs to the back-end, by result: ok or failed.", []string{"shard", "backend", "result"}},
	{"backend_downs_total", "Times the shard took the back-end down (checks failed, connection lost).", []string{"shard", "backend"}},
	{"recovered_flows_total", "Connections the switch had no entry for, recovered: lookup (an agent holds it: spliced) or cookie (none does: its request came again with a valid SYN cookie).", []string{"shard", "how"}},
	{"recovery_asked_total", "Connections the switch had no entry for and asked the agents about.", []string{"shard"}},
	{"recovery_queries_total", "LOOKUP messages sent (one per agent per batch of up to 64 connections).", []string{"shard"}},
	{"recovery_unanswered_total", "LOOKUPs an agent did not answer: ERR, connection lost, or recovery_timeout.", []string{"shard"}},
	{"recovery_conflicts_total", "Connections two agents claimed (the one still sending won).", []string{"shard"}},
	{"recovering", "Connections being asked about now.", []string{"shard"}},
}

// Metrics outside the table above: the histograms, and the switch-wide
// drain gauges.
const (
	handoffLatency  = "handoff_latency_seconds"
	recoveryLatency = "recovery_latency_seconds"
	draining        = "draining"
	drainFlows      = "drain_flows"
)

func newCollector(dp dataPath) *collector {
	c := &collector{dp: dp, descs: map[string]*prometheus.Desc{}}
	for _, m := range metrics {
		c.descs[m.name] = prometheus.NewDesc("webswitch_"+m.name, m.help, m.labels, nil)
	}
	c.descs[handoffLatency] = prometheus.NewDesc("webswitch_"+handoffLatency,
		"Time from a HANDOFF sent to the agent's answer.", []string{"shard"}, nil)
	c.descs[recoveryLatency] = prometheus.NewDesc("webswitch_"+recoveryLatency,
		"Time from the first segment of a connection the switch had no entry for to the decision (agents' answers or recovery_timeout).", []string{"shard"}, nil)
	c.descs[draining] = prometheus.NewDesc("webswitch_"+draining,
		"1 while the switch drains (SIGTERM): new connections are refused, the flows in the table go on.", nil, nil)
	c.descs[drainFlows] = prometheus.NewDesc("webswitch_"+drainFlows,
		"While the switch drains, the flows it still forwards (the drain ends at 0 or drain_timeout); 0 otherwise.", nil, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snaps := c.dp.Snapshots()
	d, left := 0.0, 0.0
	if c.dp.Draining() {
		d = 1
		for _, s := range snaps {
			left += float64(s.ActiveFlows)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.descs[draining], prometheus.GaugeValue, d)
	ch <- prometheus.MustNewConstMetric(c.descs[drainFlows], prometheus.GaugeValue, left)
	for _, s := range snaps {
		sh := strconv.Itoa(s.Shard)
		counter := func(name string, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), append([]string{sh}, labels...)...)
		}
		gauge := func(name string, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, append([]string{sh}, labels...)...)
		}
		counter("frames_received_total", s.FramesIn)
		counter("frames_forwarded_total", s.FramesForwarded)
		counter("frames_sent_total", s.FramesSent)
		counter("tx_dropped_total", s.TxDropped)
		counter("ring_packets_total", s.RingPackets)
		counter("ring_drops_total", s.RingDrops)
		for reason, n := range s.Drops {
			counter("dropped_frames_total", n, reason)
		}
		gauge("flows", float64(s.FlowsRequest), "request")
		gauge("flows", float64(s.FlowsHandingOff), "handing_off")
		gauge("flows", float64(s.FlowsResponding), "responding")
		gauge("flows", float64(s.SplicedFlows), "spliced")
		counter("handshakes_total", s.SynAcks)
		counter("connections_total", s.Flows)
		counter("flows_evicted_total", s.FlowsEvicted)
		lost := s.HandoffsErr - min(s.HandoffsErr, s.HandoffRetries) // ERRs are retried; the rest broke with their connection
		counter("handoffs_total", s.HandoffsOK, "ok")
		counter("handoffs_total", s.HandoffRetries, "refused")
		counter("handoffs_total", s.HandoffsTimeout, "timeout")
		counter("handoffs_total", lost, "lost")
		counter("handoff_retries_total", s.HandoffRetries)
		for status, n := range s.HTTPErrors {
			counter("http_errors_total", n, strconv.Itoa(status))
		}
		counter("resets_total", s.Resets)
		for status, n := range s.TLSRefused {
			counter("tls_refused_total", n, strconv.Itoa(status))
		}
		counter("protocol_mismatch_total", s.ProtocolMismatch)
		for _, b := range s.Backends {
			gauge("backend_usable", bool01(b.Usable), b.Name)
			gauge("backend_active_flows", float64(b.Active), b.Name)
			counter("backend_handoffs_total", b.HandoffsOK, b.Name, "ok")
			counter("backend_handoffs_total", b.HandoffsFailed, b.Name, "failed")
			counter("backend_downs_total", b.Downs, b.Name)
		}
		for how, n := range s.Recovered {
			counter("recovered_flows_total", n, how)
		}
		counter("recovery_asked_total", s.RecoveryAsked)
		counter("recovery_queries_total", s.RecoveryQueries)
		counter("recovery_unanswered_total", s.RecoveryUnanswered)
		counter("recovery_conflicts_total", s.RecoveryConflicts)
		gauge("recovering", float64(s.Recovering))
		ch <- histogram(c.descs[handoffLatency], s.HandoffLatency, s.HandoffLatencySum, sh)
		ch <- histogram(c.descs[recoveryLatency], s.RecoveryLatency, s.RecoveryLatencySum, sh)
	}
}

// histogram makes a Prometheus histogram of a shard.Histogram's counts
// (per bucket of shard.HistogramBounds, not cumulative) and sum.
func histogram(d *prometheus.Desc, counts []uint64, sum float64, labels ...string) prometheus.Metric {
	buckets := map[float64]uint64{}
	var cum uint64
	for i, n := range counts {
		cum += n
		if i < len(shard.HistogramBounds) {
			buckets[shard.HistogramBounds[i].Seconds()] = cum
		}
	}
	return prometheus.MustNewConstHistogram(d, cum, sum, buckets, labels...)
}

// bgpCollector exposes the BGP speaker's state to Prometheus, read at each
// scrape.
type bgpCollector struct {
	bgp                       bgpStatus
	sessionUp, announced, chg *prometheus.Desc
}

// bgpScrapeTimeout bounds a scrape's question to the speaker.
const bgpScrapeTimeout = time.Second

func newBGPCollector(bgp bgpStatus) *bgpCollector {
	return &bgpCollector{
		bgp: bgp,
		sessionUp: prometheus.NewDesc("webswitch_bgp_session_up",
			"1 while the BGP session with the peer (a router, address:port) is established.", []string{"peer"}, nil),
		announced: prometheus.NewDesc("webswitch_bgp_announced",
			"1 while the switch announces the VIP (it can serve and does not drain).", nil, nil),
		chg: prometheus.NewDesc("webswitch_bgp_announcement_changes_total",
			"Announcements and withdrawals of the VIP since the start.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessionUp
	ch <- c.announced
	ch <- c.chg
}

// Collect implements prometheus.Collector. A speaker that does not answer
// in time shows its sessions down.
func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), bgpScrapeTimeout)
	defer cancel()
	st, _ := c.bgp.Status(ctx)
	for _, p := range st.Peers {
		ch <- prometheus.MustNewConstMetric(c.sessionUp, prometheus.GaugeValue, bool01(p.Up), p.Address.String())
	}
	ch <- prometheus.MustNewConstMetric(c.announced, prometheus.GaugeValue, bool01(st.Announced))
	ch <- prometheus.MustNewConstMetric(c.chg, prometheus.CounterValue, float64(st.Changes))
}

// bool01 is 1 for true, 0 for false.
func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
