package shard

import (
	"sync/atomic"
	"time"

	"webswitch/ring"
)

// Drop says why a frame was dropped; each kind has a counter.
type Drop uint8

// Kinds of dropped frames.
const (
	DropTruncated Drop = iota
	DropNotIPv4
	DropIPHeader
	DropFragment
	DropIPChecksum
	DropNotTCP
	DropTCPHeader
	DropTCPChecksum
	DropBadOptions
	DropPort
	DropNoFlow       // not a SYN, no flow, cookie invalid
	DropTableFull    // no room for a new flow
	DropQueueFull    // frame arrived during a handoff and the flow's queue was full
	DropNoNeighbor   // spliced frame, back-end MAC unknown
	DropDraining     // a SYN while the switch drains: answered with a RST
	DropNoOwner      // no agent holds the connection (or one did not answer)
	DropNoAgent      // a connection to recover, and no agent to ask
	DropRecoveryFull // a connection to recover, and maxRecovering being asked about
	DropRecoveryRate // a connection to recover beyond recovery_rate
	DropOtherHost    // a frame to another host's MAC address (flooded by a bridge)
	numDrops
)

var dropNames = [numDrops]string{
	"truncated", "not_ipv4", "ip_header", "fragment", "ip_checksum", "not_tcp",
	"tcp_header", "tcp_checksum", "tcp_options", "port", "no_flow", "table_full",
	"queue_full", "no_neighbor", "draining", "no_owner", "no_agent", "recovery_full",
	"recovery_rate", "other_host",
}

func (d Drop) String() string { return dropNames[d] }

// Counters are a shard's statistics. The shard writes them; anyone may read
// them with atomic loads at any time.
type Counters struct {
	FramesIn        atomic.Uint64
	FramesForwarded atomic.Uint64 // spliced frames sent to a back-end
	FramesSent      atomic.Uint64 // frames the switch built itself (SYN-ACK, ACK, responses, RST)
	SynAcks         atomic.Uint64
	Flows           atomic.Uint64 // connections accepted (valid cookie)
	FlowsEvicted    atomic.Uint64 // flows waiting for their request head, reset to make room in a full table
	HandoffsSent    atomic.Uint64
	HandoffsOK      atomic.Uint64
	HandoffsErr     atomic.Uint64
	HandoffsTimeout atomic.Uint64
	HandoffRetries  atomic.Uint64 // handoffs sent again to another back-end after an ERR
	FINsReplayed    atomic.Uint64 // client FINs taken with the request and sent on to the back-end
	Resets          atomic.Uint64 // RSTs sent
	ActiveFlows     atomic.Int64
	SplicedFlows    atomic.Int64
	HTTPErrors      [600]atomic.Uint64 // switch-generated responses by status
	// TLSRefused counts the TLS connections the switch closed, by the
	// HTTP status it would have answered (a malformed ClientHello 400, no
	// rule 404, no back-end 503, ...): it cannot answer in TLS.
	TLSRefused       [600]atomic.Uint64
	ProtocolMismatch atomic.Uint64 // plain HTTP on a TLS port or TLS on an HTTP port, closed
	Drops            [numDrops]atomic.Uint64
	TxSent           atomic.Uint64 // frames the kernel took on the TX path
	TxDropped        atomic.Uint64 // frames the TX path refused (queue full, too big, ...)

	// Flows by state, counted by a census of the table every second.
	FlowsRequest    atomic.Int64 // waiting for their request head
	FlowsHandingOff atomic.Int64 // waiting for an agent's answer
	FlowsResponding atomic.Int64 // the switch answers and closes them itself

	HandoffLatency Histogram // from HANDOFF sent to the agent's answer (OK or ERR)

	// Flow recovery (recover.go).
	Recovered          [numRecovered]atomic.Uint64 // flows recovered, by how
	RecoveryAsked      atomic.Uint64               // connections asked about
	RecoveryQueries    atomic.Uint64               // LOOKUPs sent (one per agent per batch)
	RecoveryUnanswered atomic.Uint64               // LOOKUPs an agent did not answer (ERR, malformed, lost, timed out)
	RecoveryConflicts  atomic.Uint64               // connections two agents claimed
	RecoveryLatency    Histogram                   // from a connection's first segment to its decision
	Recovering         atomic.Int64                // connections being asked about now

	// Round is the shard's clock at the end of its last loop round: a
	// heartbeat, so that a stuck or dead loop is seen (Switch.Health).
	Round atomic.Int64

	backends atomic.Pointer[[]*BackendCounters]
}

// Backends returns the per-back-end counters, by back-end index. The slice
// only grows (a reload appends back-ends), so an index stays valid.
func (c *Counters) Backends() []*BackendCounters {
	if p := c.backends.Load(); p != nil {
		return *p
	}
	return nil
}

// growBackends makes room for n back-ends, keeping the counters there are.
func (c *Counters) growBackends(n int) {
	old := c.Backends()
	if len(old) >= n {
		return
	}
	s := append(make([]*BackendCounters, 0, n), old...)
	for len(s) < n {
		s = append(s, new(BackendCounters))
	}
	c.backends.Store(&s)
}

// BackendCounters are one back-end's figures as one shard sees them.
type BackendCounters struct {
	HandoffsOK     atomic.Uint64
	HandoffsFailed atomic.Uint64 // refused (ERR), timed out, or lost with the control connection
	Downs          atomic.Uint64 // times the shard took the back-end down (checks failed, connection lost)
	Usable         atomic.Bool   // new connections may go to it now
	Active         atomic.Int64  // spliced flows to it (census)
}

// HistogramBounds are the upper bounds of the handoff latency buckets.
var HistogramBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond,
}

// Histogram counts durations in the buckets of HistogramBounds (the last
// bucket is everything above them). One goroutine observes; any may read.
type Histogram struct {
	Buckets [len(HistogramBounds) + 1]atomic.Uint64 // not cumulative
	Sum     atomic.Int64                            // nanoseconds
}

func (h *Histogram) observe(d time.Duration) {
	i := 0
	for i < len(HistogramBounds) && d > HistogramBounds[i] {
		i++
	}
	h.Buckets[i].Add(1)
	h.Sum.Add(int64(d))
}

// snapshot returns the counts per bucket and the sum in seconds.
func (h *Histogram) snapshot() ([]uint64, float64) {
	counts := make([]uint64, len(h.Buckets))
	for i := range h.Buckets {
		counts[i] = h.Buckets[i].Load()
	}
	return counts, time.Duration(h.Sum.Load()).Seconds()
}

// publishTx copies the shard's TX statistics (owned by its goroutine) into
// the shared counters; the loop calls it once per round, not per frame.
func (c *Counters) publishTx(st ring.SenderStats) {
	c.TxSent.Store(st.Sent)
	c.TxDropped.Store(st.Again + st.NoBufs + st.MsgSize + st.Other)
}

// Snapshot is a plain copy of Counters for logs and tests.
type Snapshot struct {
	Shard            int               `json:"shard"`
	FramesIn         uint64            `json:"frames_in"`
	FramesForwarded  uint64            `json:"frames_forwarded"`
	FramesSent       uint64            `json:"frames_sent"`
	SynAcks          uint64            `json:"syn_acks"`
	Flows            uint64            `json:"flows"`
	FlowsEvicted     uint64            `json:"flows_evicted"`
	HandoffsSent     uint64            `json:"handoffs_sent"`
	HandoffsOK       uint64            `json:"handoffs_ok"`
	HandoffsErr      uint64            `json:"handoffs_err"`
	HandoffsTimeout  uint64            `json:"handoffs_timeout"`
	HandoffRetries   uint64            `json:"handoff_retries"`
	FINsReplayed     uint64            `json:"fins_replayed"`
	Resets           uint64            `json:"resets"`
	ActiveFlows      int64             `json:"active_flows"`
	SplicedFlows     int64             `json:"spliced_flows"`
	HTTPErrors       map[int]uint64    `json:"http_errors,omitempty"`
	TLSRefused       map[int]uint64    `json:"tls_refused,omitempty"`
	ProtocolMismatch uint64            `json:"protocol_mismatch"`
	Drops            map[string]uint64 `json:"drops,omitempty"`
	TxSent           uint64            `json:"tx_sent"`
	TxDropped        uint64            `json:"tx_dropped"`
	RingPackets      uint64            `json:"ring_packets"`
	RingDrops        uint64            `json:"ring_drops"`
	RingFreezes      uint64            `json:"ring_freezes"`
	RingTruncated    uint64            `json:"ring_truncated"` // frames too big for the ring, skipped
	FlowsRequest     int64             `json:"flows_request"`
	FlowsHandingOff  int64             `json:"flows_handing_off"`
	FlowsResponding  int64             `json:"flows_responding"`
	// HandoffLatency are the counts per bucket of HistogramBounds (not
	// cumulative; the last is above them all) and their sum in seconds.
	HandoffLatency    []uint64          `json:"handoff_latency"`
	HandoffLatencySum float64           `json:"handoff_latency_sum"`
	Backends          []BackendSnapshot `json:"backends"`

	Recovered          map[string]uint64 `json:"recovered,omitempty"` // by how (RecoveredName)
	RecoveryAsked      uint64            `json:"recovery_asked"`
	RecoveryQueries    uint64            `json:"recovery_queries"`
	RecoveryUnanswered uint64            `json:"recovery_unanswered"`
	RecoveryConflicts  uint64            `json:"recovery_conflicts"`
	Recovering         int64             `json:"recovering"`
	// RecoveryLatency: as HandoffLatency, from a connection's first
	// segment to its decision.
	RecoveryLatency    []uint64 `json:"recovery_latency"`
	RecoveryLatencySum float64  `json:"recovery_latency_sum"`
}

// BackendSnapshot is a plain copy of BackendCounters.
type BackendSnapshot struct {
	Name           string `json:"name"`
	HandoffsOK     uint64 `json:"handoffs_ok"`
	HandoffsFailed uint64 `json:"handoffs_failed"`
	Downs          uint64 `json:"downs"`
	Usable         bool   `json:"usable"`
	Active         int64  `json:"active"`
}

func (sh *Shard) snapshot() Snapshot {
	c := &sh.C
	s := Snapshot{
		Shard:           sh.id,
		FramesIn:        c.FramesIn.Load(),
		FramesForwarded: c.FramesForwarded.Load(),
		FramesSent:      c.FramesSent.Load(),
		SynAcks:         c.SynAcks.Load(),
		Flows:           c.Flows.Load(),
		FlowsEvicted:    c.FlowsEvicted.Load(),
		HandoffsSent:    c.HandoffsSent.Load(),
		HandoffsOK:      c.HandoffsOK.Load(),
		HandoffsErr:     c.HandoffsErr.Load(),
		HandoffsTimeout: c.HandoffsTimeout.Load(),
		HandoffRetries:  c.HandoffRetries.Load(),
		FINsReplayed:    c.FINsReplayed.Load(),
		Resets:          c.Resets.Load(),
		ActiveFlows:     c.ActiveFlows.Load(),
		SplicedFlows:    c.SplicedFlows.Load(),
		TxSent:          c.TxSent.Load(),
		TxDropped:       c.TxDropped.Load(),
		HTTPErrors:      map[int]uint64{},
		Drops:           map[string]uint64{},
	}
	s.TLSRefused, s.ProtocolMismatch = map[int]uint64{}, c.ProtocolMismatch.Load()
	for i := range c.HTTPErrors {
		if v := c.HTTPErrors[i].Load(); v != 0 {
			s.HTTPErrors[i] = v
		}
		if v := c.TLSRefused[i].Load(); v != 0 {
			s.TLSRefused[i] = v
		}
	}
	for i := range c.Drops {
		if v := c.Drops[i].Load(); v != 0 {
			s.Drops[Drop(i).String()] = v
		}
	}
	s.FlowsRequest, s.FlowsHandingOff, s.FlowsResponding = c.FlowsRequest.Load(), c.FlowsHandingOff.Load(), c.FlowsResponding.Load()
	s.HandoffLatency, s.HandoffLatencySum = c.HandoffLatency.snapshot()
	s.RecoveryLatency, s.RecoveryLatencySum = c.RecoveryLatency.snapshot()
	s.Recovered = map[string]uint64{}
	for how := range c.Recovered {
		if v := c.Recovered[how].Load(); v != 0 {
			s.Recovered[RecoveredName(how)] = v
		}
	}
	s.RecoveryAsked, s.RecoveryQueries = c.RecoveryAsked.Load(), c.RecoveryQueries.Load()
	s.RecoveryUnanswered, s.RecoveryConflicts = c.RecoveryUnanswered.Load(), c.RecoveryConflicts.Load()
	s.Recovering = c.Recovering.Load()
	cfg := sh.config()
	for i, b := range c.Backends() {
		if i >= len(cfg.Backends) {
			break // a reload is adding it
		}
		s.Backends = append(s.Backends, BackendSnapshot{
			Name:           cfg.Backends[i].Name,
			HandoffsOK:     b.HandoffsOK.Load(),
			HandoffsFailed: b.HandoffsFailed.Load(),
			Downs:          b.Downs.Load(),
			Usable:         b.Usable.Load(),
			Active:         b.Active.Load(),
		})
	}
	return s
}
